using System.Text.Json;
using System.Text.RegularExpressions;
using MicroLm.Gguf;

namespace MicroLm.Conversion;

/// <summary>tokenizer.json (+ tokenizer_config.json, special_tokens_map.json) → llama.cpp's tokenizer keys.
/// Two kinds: byte-level BPE ("gpt2": tokens, merges, token types, "tokenizer.ggml.pre" recognised from the
/// pre-tokenizer) and the SentencePiece-style BPE LLaMA-family files carry (▁ for spaces, byte fallback):
/// "llama" with scores (a token's score is minus the rank of the first merge that makes it, so the highest
/// score is the merge Hugging Face applies first), token types (byte tokens &lt;0xXX&gt; type 6).</summary>
internal static class HfTokenizer
{
    private const int Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Byte = 6;

    /// <summary>GPT-2's split rule, as tokenizer.json files spell it in a Split pre-tokenizer.</summary>
    private const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    /// <summary>Adds the tokenizer keys; the token list is padded with "[PADn]" to <paramref name="vocabSize"/> rows.</summary>
    public static void Write(string dir, GgufWriter w, int vocabSize)
    {
        string path = Path.Combine(dir, "tokenizer.json");
        var tok = HfCheckpoint.ReadJson(path, required: true)!.Value;
        var config = HfCheckpoint.ReadJson(Path.Combine(dir, "tokenizer_config.json"), required: false);
        var specialMap = HfCheckpoint.ReadJson(Path.Combine(dir, "special_tokens_map.json"), required: false);
        if (!tok.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
            throw new MicroLmException($"{path}: no model");
        string type = model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "BPE";
        if (type != "BPE") throw new MicroLmException($"{path}: tokenizer model {type} is not supported (BPE is)");
        if (!model.TryGetProperty("vocab", out var vocab) || vocab.ValueKind != JsonValueKind.Object)
            throw new MicroLmException($"{path}: model.vocab is missing");

        // Tokens by id; added tokens may extend the list.
        var byId = new Dictionary<int, string>();
        foreach (var p in vocab.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int id) || id < 0 || id >= vocabSize)
                throw new MicroLmException($"{path}: token '{p.Name}' has id {p.Value} outside the model's vocabulary of {vocabSize}");
            if (!byId.TryAdd(id, p.Name)) throw new MicroLmException($"{path}: id {id} is given twice");
        }
        var types = new Dictionary<int, int>();
        if (tok.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
            foreach (var a in added.EnumerateArray())
            {
                int id = a.GetProperty("id").GetInt32();
                string content = a.GetProperty("content").GetString()!;
                if (id < 0 || id >= vocabSize) throw new MicroLmException($"{path}: added token '{content}' has id {id} outside the model's vocabulary of {vocabSize}");
                byId[id] = content;
                bool special = a.TryGetProperty("special", out var s) && s.ValueKind == JsonValueKind.True;
                types[id] = special ? Control : UserDefined;
            }
        var tokens = new string[vocabSize];
        var tokenTypes = new int[vocabSize];
        for (int i = 0; i < vocabSize; i++)
        {
            if (byId.TryGetValue(i, out var s)) { tokens[i] = s; tokenTypes[i] = types.GetValueOrDefault(i, Normal); }
            else { tokens[i] = $"[PAD{i}]"; tokenTypes[i] = UserDefined; }
        }
        var merges = Merges(model, path);

        bool byteFallback = model.TryGetProperty("byte_fallback", out var bf) && bf.ValueKind == JsonValueKind.True;
        bool byteLevel = Contains(tok, "pre_tokenizer", "ByteLevel") || Contains(tok, "decoder", "ByteLevel");
        var ids = tokens.Select((s, i) => (s, i)).GroupBy(x => x.s).ToDictionary(g => g.Key, g => g.First().i, StringComparer.Ordinal);
        if (byteLevel)
        {
            w.Add("tokenizer.ggml.model", "gpt2");
            w.Add("tokenizer.ggml.pre", PreName(tok, path));
            w.Add("tokenizer.ggml.tokens", tokens);
            w.Add("tokenizer.ggml.token_type", tokenTypes);
            w.Add("tokenizer.ggml.merges", merges.Select(m => m.Left + " " + m.Right).ToArray());
        }
        else if (byteFallback || Contains(tok, "normalizer", "▁") || Contains(tok, "pre_tokenizer", "Metaspace"))
        {
            // Score: minus the rank of the first merge that makes the token (0 for tokens no merge makes).
            var scores = new float[vocabSize];
            var scored = new bool[vocabSize];
            for (int r = 0; r < merges.Count; r++)
                if (ids.TryGetValue(merges[r].Left + merges[r].Right, out int id) && !scored[id]) { scores[id] = -r; scored[id] = true; }
            for (int i = 0; i < vocabSize; i++)
            {
                if (tokenTypes[i] == Normal && Regex.IsMatch(tokens[i], "^<0x[0-9A-Fa-f]{2}>$")) tokenTypes[i] = Byte;
            }
            if (model.TryGetProperty("unk_token", out var unk) && unk.ValueKind == JsonValueKind.String && ids.TryGetValue(unk.GetString()!, out int unkId))
            {
                tokenTypes[unkId] = Unknown;
                w.Add("tokenizer.ggml.unknown_token_id", (uint)unkId);
            }
            w.Add("tokenizer.ggml.model", "llama");
            w.Add("tokenizer.ggml.pre", "default");
            w.Add("tokenizer.ggml.tokens", tokens);
            w.Add("tokenizer.ggml.scores", scores);
            w.Add("tokenizer.ggml.token_type", tokenTypes);
            w.Add("tokenizer.ggml.add_space_prefix", Contains(tok, "normalizer", "Prepend") || Contains(tok, "pre_tokenizer", "\"prepend_scheme\":\"always\"") || Contains(tok, "pre_tokenizer", "\"add_prefix_space\":true"));
        }
        else throw new MicroLmException($"{path}: neither byte-level BPE nor SentencePiece-style BPE (no ByteLevel pre-tokenizer, no ▁ normaliser, no byte fallback)");

        // Special tokens: tokenizer_config.json, then special_tokens_map.json.
        foreach (var (name, key) in new[] { ("bos_token", "bos"), ("eos_token", "eos"), ("pad_token", "padding") })
        {
            string? text = SpecialText(config, name) ?? SpecialText(specialMap, name);
            if (text != null && ids.TryGetValue(text, out int id)) w.Add($"tokenizer.ggml.{key}_token_id", (uint)id);
        }
        if (config is { } c)
        {
            if (c.TryGetProperty("add_bos_token", out var ab) && ab.ValueKind is JsonValueKind.True or JsonValueKind.False) w.Add("tokenizer.ggml.add_bos_token", ab.GetBoolean());
            if (c.TryGetProperty("add_eos_token", out var ae) && ae.ValueKind is JsonValueKind.True or JsonValueKind.False) w.Add("tokenizer.ggml.add_eos_token", ae.GetBoolean());
        }
    }

    private static List<(string Left, string Right)> Merges(JsonElement model, string path)
    {
        var list = new List<(string, string)>();
        if (!model.TryGetProperty("merges", out var merges) || merges.ValueKind != JsonValueKind.Array) return list;
        foreach (var m in merges.EnumerateArray())
        {
            if (m.ValueKind == JsonValueKind.String)
            {
                string s = m.GetString()!;
                int sp = s.IndexOf(' ', 1);
                if (sp <= 0) throw new MicroLmException($"{path}: merge '{s}' is not two tokens");
                list.Add((s[..sp], s[(sp + 1)..]));
            }
            else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2)
                list.Add((m[0].GetString()!, m[1].GetString()!));
            else throw new MicroLmException($"{path}: a merge is neither \"a b\" nor [a, b]");
        }
        return list;
    }

    /// <summary>llama.cpp's name for the pre-tokenizer's split rule.</summary>
    private static string PreName(JsonElement tok, string path)
    {
        if (!tok.TryGetProperty("pre_tokenizer", out var pre) || pre.ValueKind != JsonValueKind.Object)
            throw new MicroLmException($"{path}: byte-level BPE without a pre_tokenizer");
        var steps = pre.TryGetProperty("pretokenizers", out var list) && list.ValueKind == JsonValueKind.Array
            ? list.EnumerateArray().ToList() : [pre];
        string Type(JsonElement e) => e.TryGetProperty("type", out var ty) ? ty.GetString() ?? "" : "";
        bool Regex(JsonElement e) => !e.TryGetProperty("use_regex", out var r) || r.ValueKind != JsonValueKind.False;
        // GPT-2, GPT-Neo, GPT-NeoX/Pythia: one ByteLevel step with its built-in GPT-2 split.
        if (steps.Count == 1 && Type(steps[0]) == "ByteLevel" && Regex(steps[0])) return "gpt-2";
        // The same split given explicitly.
        if (steps.Count == 2 && Type(steps[0]) == "Split" && SplitPattern(steps[0]) == Gpt2Pattern && Type(steps[1]) == "ByteLevel" && !Regex(steps[1])) return "gpt-2";
        // StarCoder: single digits, then GPT-2's split.
        if (steps.Count == 2 && Type(steps[0]) == "Digits" && steps[0].TryGetProperty("individual_digits", out var ind) && ind.ValueKind == JsonValueKind.True
            && Type(steps[1]) == "ByteLevel" && Regex(steps[1])) return "starcoder";
        throw new MicroLmException($"{path}: the pre-tokenizer ({pre.GetRawText()[..System.Math.Min(120, pre.GetRawText().Length)]}) is not one MicroLm recognises");
    }

    private static string? SplitPattern(JsonElement split) =>
        split.TryGetProperty("pattern", out var p) && p.ValueKind == JsonValueKind.Object && p.TryGetProperty("Regex", out var r) ? r.GetString() : null;

    private static bool Contains(JsonElement tok, string property, string text) =>
        tok.TryGetProperty(property, out var v) && v.ValueKind != JsonValueKind.Null && v.GetRawText().Replace(" ", "").Contains(text.Replace(" ", ""), StringComparison.Ordinal)
        || tok.TryGetProperty(property, out var v2) && v2.ValueKind != JsonValueKind.Null && JsonSerializerUnescaped(v2).Contains(text, StringComparison.Ordinal);

    private static string JsonSerializerUnescaped(JsonElement e) => System.Text.RegularExpressions.Regex.Unescape(e.GetRawText());

    /// <summary>A special token's text: a string, or an AddedToken object's "content".</summary>
    private static string? SpecialText(JsonElement? json, string name)
    {
        if (json is not { } j || j.ValueKind != JsonValueKind.Object || !j.TryGetProperty(name, out var v)) return null;
        return v.ValueKind switch
        {
            JsonValueKind.String => v.GetString(),
            JsonValueKind.Object when v.TryGetProperty("content", out var c) => c.GetString(),
            _ => null,
        };
    }
}
