using System.Globalization;
using System.Text;
using MicroLm.Gguf;

namespace MicroLm.Tokenizers;

/// <summary>BERT's WordPiece ("tokenizer.ggml.model" = "bert"): control characters dropped, CJK
/// ideographs made words of their own, lower case, accents stripped (NFD without nonspacing marks),
/// words split at whitespace and punctuation, then each word cut greedily into the longest pieces in
/// the vocabulary; a word that cannot be cut completely becomes the unknown token. In GGUF a
/// word-initial piece is stored with a leading ▁ and a continuation piece bare (BERT's "##x" is "x").</summary>
internal sealed class WordPieceTokenizer : Tokenizer
{
    private const char WordMarker = '\u2581';
    private const int MaxWordChars = 100;
    private readonly string[] _pieces;
    private readonly int[] _types;
    private readonly Dictionary<string, int> _ids;
    private readonly int _unkId;

    public override int VocabSize => _pieces.Length;

    private WordPieceTokenizer(string[] pieces, int[] types, int cls, int sep, int unk)
    {
        _pieces = pieces; _types = types;
        BosId = cls; EosId = sep; _unkId = unk; AddBos = cls >= 0;
        _ids = new Dictionary<string, int>(pieces.Length, StringComparer.Ordinal);
        for (int i = 0; i < pieces.Length; i++) _ids.TryAdd(pieces[i], i);
    }

    public static WordPieceTokenizer FromGguf(GgufFile file)
    {
        var pieces = file.Get("tokenizer.ggml.tokens").AsStringArray();
        int n = pieces.Length;
        int[] types;
        if (file.TryGet("tokenizer.ggml.token_type", out var t)) types = t.AsSpan<int>().ToArray();
        else { types = new int[n]; Array.Fill(types, SentencePieceTokenizer.TypeNormal); }
        if (types.Length != n) throw new MicroLmException($"tokenizer arrays disagree: {n} tokens, {types.Length} types");
        int cls = OptionalId(file, "tokenizer.ggml.cls_token_id", n);
        if (cls < 0) cls = OptionalId(file, "tokenizer.ggml.bos_token_id", n);
        int sep = OptionalId(file, "tokenizer.ggml.seperator_token_id", n);
        if (sep < 0) sep = OptionalId(file, "tokenizer.ggml.eos_token_id", n);
        int unk = OptionalId(file, "tokenizer.ggml.unknown_token_id", n);
        return new WordPieceTokenizer(pieces, types, cls, sep, unk);
    }

    /// <summary>No token types are kept for WordPiece vocabularies: every token reads as normal (1).</summary>
    public override int TokenType(int id) => 1;

    public override string TokenText(int id) => (uint)id < (uint)_pieces.Length ? _pieces[id] : $"<invalid {id}>";

    public override ReadOnlySpan<byte> Decode(int previous, int id)
    {
        if ((uint)id >= (uint)_pieces.Length) throw new MicroLmException($"token id {id} is outside the vocabulary of {_pieces.Length}");
        if (_types[id] == SentencePieceTokenizer.TypeControl) return [];
        string piece = _pieces[id];
        bool wordStart = piece.Length > 0 && piece[0] == WordMarker;
        if (wordStart) piece = (previous < 0 || previous == BosId ? "" : " ") + piece[1..];
        return Encoding.UTF8.GetBytes(piece);
    }

    public override List<int> Encode(string text, bool addBos)
    {
        var output = new List<int>();
        if (addBos && BosId >= 0) output.Add(BosId);
        foreach (var word in Words(text)) AddWord(word, output);
        if (addBos && EosId >= 0) output.Add(EosId);
        return output;
    }

    /// <summary>The basic tokenizer: clean, isolate CJK, lower case, strip accents, split at spaces and punctuation.</summary>
    private static List<string> Words(string text)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        void Flush() { if (word.Length > 0) { words.Add(word.ToString()); word.Clear(); } }
        string lowered = Clean(text).ToLowerInvariant();
        for (int i = 0; i < lowered.Length; i += char.IsSurrogatePair(lowered, i) ? 2 : 1)
        {
            int cp = char.ConvertToUtf32(lowered, i);
            var category = CharUnicodeInfo.GetUnicodeCategory(cp);
            if (category == UnicodeCategory.NonSpacingMark) continue;
            cp = StripAccent(cp);
            if (IsWhitespace(cp, category)) { Flush(); continue; }
            if (IsPunctuation(cp, category) || IsCjk(cp)) { Flush(); words.Add(char.ConvertFromUtf32(cp)); continue; }
            word.Append(char.ConvertFromUtf32(cp));
        }
        Flush();
        return words;
    }

    // The base letter of each precomposed Latin letter whose canonical decomposition is that letter plus
    // nonspacing marks ('.' where there is none), for U+00C0–U+024F and U+1E00–U+1EFF: what NFD followed by
    // dropping the marks gives, without the ICU data that invariant globalization (and the browser) lacks.
    private const string Latin1To24F = "AAAAAA.CEEEEIIII.NOOOOO..UUUUY..aaaaaa.ceeeeiiii.nooooo..uuuuy.yAaAaAaCcCcCcCcDd..EeEeEeEeEeGgGgGgGgHh..IiIiIiIiI...JjKk.LlLlLl....NnNnNn...OoOoOo..RrRrRrSsSsSsSsTtTt..UuUuUuUuUuUuWwYyYZzZzZz.................................Oo.............Uu............................AaIiOoUuUuUuUuUu.AaAaÆæ..GgKkOoOoƷ.j...Gg..NnAaÆæØøAaAaEeEeIiIiOoOoRrRrUuUuSsTt..Hh......AaEeOoOoOoOoYy............................";
    private const string LatinExtendedAdditional = "AaBbBbBbCcDdDdDdDdDdEeEeEeEeEeFfGgHhHhHhHhHhIiIiKkKkKkLlLlLlLlMmMmMmNnNnNnNnOoOoOoOoPpPpRrRrRrRrSsSsSsSsSsTtTtTtTtUuUuUuUuUuVvVvWwWwWwWwWwXxXxYyZzZzZzhtwy.ſ....AaAaAaAaAaAaAaAaAaAaAaAaEeEeEeEeEeEeEeEeIiIiOoOoOoOoOoOoOoOoOoOoOoOoUuUuUuUuUuUuUuYyYyYyYy......";

    private static int StripAccent(int cp)
    {
        char b = cp is >= 0xC0 and <= 0x24F ? Latin1To24F[cp - 0xC0] : cp is >= 0x1E00 and <= 0x1EFF ? LatinExtendedAdditional[cp - 0x1E00] : '.';
        return b == '.' ? cp : b;
    }

    private static string Clean(string text)
    {
        var sb = new StringBuilder(text.Length);
        for (int i = 0; i < text.Length; i += char.IsSurrogatePair(text, i) ? 2 : 1)
        {
            int cp = char.IsSurrogate(text[i]) && !char.IsSurrogatePair(text, i) ? 0xFFFD : char.ConvertToUtf32(text, i);
            var category = CharUnicodeInfo.GetUnicodeCategory(cp);
            if (cp == 0 || cp == 0xFFFD) continue;
            if (IsWhitespace(cp, category)) { sb.Append(' '); continue; }
            if (category is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.OtherNotAssigned
                or UnicodeCategory.PrivateUse or UnicodeCategory.Surrogate) continue;
            sb.Append(char.ConvertFromUtf32(cp));
        }
        return sb.ToString();
    }

    private static bool IsWhitespace(int cp, UnicodeCategory c) =>
        cp is ' ' or '\t' or '\n' or '\r' || c == UnicodeCategory.SpaceSeparator;

    // BERT counts every ASCII character that is not a letter, digit or space as punctuation, plus Unicode's P* classes.
    private static bool IsPunctuation(int cp, UnicodeCategory c) =>
        cp is >= 33 and <= 47 or >= 58 and <= 64 or >= 91 and <= 96 or >= 123 and <= 126
        || c is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation
            or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation or UnicodeCategory.FinalQuotePunctuation
            or UnicodeCategory.OtherPunctuation;

    private static bool IsCjk(int cp) =>
        cp is >= 0x4E00 and <= 0x9FFF or >= 0x3400 and <= 0x4DBF or >= 0x20000 and <= 0x2A6DF or >= 0x2A700 and <= 0x2B73F
            or >= 0x2B740 and <= 0x2B81F or >= 0x2B820 and <= 0x2CEAF or >= 0xF900 and <= 0xFAFF or >= 0x2F800 and <= 0x2FA1F;

    /// <summary>Greedy longest match from the left; the whole word is the unknown token if any part has no piece.</summary>
    private void AddWord(string word, List<int> output)
    {
        int start = output.Count;
        if (word.Length <= MaxWordChars)
        {
            for (int pos = 0; pos < word.Length;)
            {
                int found = -1, end = word.Length;
                for (; end > pos; end--)
                {
                    if (end < word.Length && char.IsLowSurrogate(word[end])) continue;
                    string piece = pos == 0 ? WordMarker + word[..end] : word[pos..end];
                    if (_ids.TryGetValue(piece, out found)) break;
                    found = -1;
                }
                if (found < 0) { output.RemoveRange(start, output.Count - start); break; }
                output.Add(found);
                pos = end;
            }
            if (output.Count > start) return;
        }
        if (_unkId >= 0) output.Add(_unkId);
    }
}
