using MicroLm.Gguf;
using MicroLm.Tokenizers;

namespace MicroLm;

/// <summary>Text ↔ token ids for one vocabulary, read from GGUF metadata ("tokenizer.ggml.*").</summary>
public abstract class Tokenizer
{
    private protected Tokenizer() { }

    public abstract int VocabSize { get; }
    public int BosId { get; private protected init; } = -1;
    public int EosId { get; private protected init; } = -1;
    /// <summary>Whether a BOS token starts the prompt by default ("tokenizer.ggml.add_bos_token").</summary>
    public bool AddBos { get; private protected init; }

    /// <summary>Token ids of <paramref name="text"/>; special-token text is not parsed (it is plain text).</summary>
    public abstract List<int> Encode(string text, bool addBos);

    /// <summary>Token ids of <paramref name="text"/>; with <paramref name="parseSpecial"/>, the text of a
    /// control or user-defined token ("&lt;|im_start|&gt;", "&lt;/s&gt;") becomes that token (the longest
    /// match at each place), and the text between is encoded piece by piece, as llama.cpp does.</summary>
    public List<int> Encode(string text, bool addBos, bool parseSpecial)
    {
        if (!parseSpecial) return Encode(text, addBos);
        var specials = Specials();
        var output = Encode("", addBos);
        int start = 0, pos = 0;
        while (pos < text.Length)
        {
            int id = -1, length = 0;
            foreach (var (s, sid) in specials)
                if (s[0] == text[pos] && string.CompareOrdinal(text, pos, s, 0, s.Length) == 0) { id = sid; length = s.Length; break; }
            if (id < 0) { pos++; continue; }
            if (pos > start) output.AddRange(Encode(text[start..pos], false));
            output.Add(id);
            pos += length;
            start = pos;
        }
        if (start < text.Length) output.AddRange(Encode(text[start..], false));
        return output;
    }

    private (string Text, int Id)[]? _specials;

    /// <summary>Control and user-defined tokens with text, longest first (then lowest id).</summary>
    private (string Text, int Id)[] Specials()
    {
        if (_specials != null) return _specials;
        var list = new List<(string Text, int Id)>();
        for (int id = 0; id < VocabSize; id++)
        {
            int type = TokenType(id);
            if (type is not (TypeControl or TypeUserDefined)) continue;
            string s = TokenText(id);
            if (s.Length > 0) list.Add((s, id));
        }
        list.Sort((a, b) => a.Text.Length != b.Text.Length ? b.Text.Length.CompareTo(a.Text.Length) : a.Id.CompareTo(b.Id));
        return _specials = list.ToArray();
    }

    internal const int TypeControlToken = 3, TypeUserDefinedToken = 4;
    private const int TypeControl = TypeControlToken, TypeUserDefined = TypeUserDefinedToken;

    /// <summary>"tokenizer.ggml.token_type" of a token (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).</summary>
    public abstract int TokenType(int id);

    /// <summary>The bytes that token <paramref name="id"/> stands for when printed after <paramref name="previous"/>
    /// (-1 at the start). Control tokens give no bytes.</summary>
    public abstract ReadOnlySpan<byte> Decode(int previous, int id);

    /// <summary>The token's text as stored in the vocabulary, for diagnostics.</summary>
    public abstract string TokenText(int id);

    /// <summary>A token that ends a document: EOS, and BOS too (llama2.c's models emit BOS between
    /// stories, and llama2.c stops there).</summary>
    public bool IsEndOfGeneration(int id) => id == EosId || id == BosId && BosId >= 0 || EndOfTurn().Contains(id);

    private HashSet<int>? _endOfTurn;

    /// <summary>Control tokens that close a chat turn ("&lt;|im_end|&gt;", "&lt;|eot_id|&gt;", …): a chat model
    /// emits one when its answer is done, whatever the file names as EOS (llama.cpp's end-of-generation set).</summary>
    private HashSet<int> EndOfTurn()
    {
        if (_endOfTurn != null) return _endOfTurn;
        var set = new HashSet<int>();
        foreach (var (text, id) in Specials())
            if (TokenType(id) == TypeControl && text is "<|im_end|>" or "<|eot_id|>" or "<|end|>" or "<end_of_turn>" or "<|endoftext|>"
                or "<|end_of_text|>" or "<|eom_id|>" or "<|return|>" or "<|END_OF_TURN_TOKEN|>")
                set.Add(id);
        return _endOfTurn = set;
    }

    /// <summary>Decodes a whole sequence to a string (invalid UTF-8 becomes U+FFFD).</summary>
    public string DecodeAll(IEnumerable<int> ids)
    {
        var bytes = new List<byte>();
        int prev = -1;
        foreach (int id in ids) { bytes.AddRange(Decode(prev, id).ToArray()); prev = id; }
        return System.Text.Encoding.UTF8.GetString(bytes.ToArray());
    }

    internal static Tokenizer Load(GgufFile file)
    {
        string model = file.GetString("tokenizer.ggml.model")
            ?? throw new MicroLmException("model has no tokenizer (tokenizer.ggml.model is missing)");
        return model switch
        {
            "llama" => SentencePieceTokenizer.FromGguf(file),
            "gpt2" => ByteLevelBpeTokenizer.FromGguf(file),
            "bert" => WordPieceTokenizer.FromGguf(file),
            _ => throw new MicroLmException($"tokenizer model '{model}' is not supported"),
        };
    }

    private protected static int OptionalId(GgufFile file, string key, int vocabSize)
    {
        if (!file.TryGet(key, out var v)) return -1;
        uint raw = v.AsUInt32Bits();
        return raw < (uint)vocabSize ? (int)raw : -1;
    }
}
