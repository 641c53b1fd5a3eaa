using System.Globalization;

namespace MicroLm.Tokenizers;

/// <summary>Unicode classes used by the pre-tokenizers, with llama.cpp's meanings: \p{L}, \p{N}, \p{P}
/// are the general categories; whitespace (\s) is the Unicode White_Space property (U+0009–U+000D,
/// U+0020, U+0085, U+00A0, U+1680, U+2000–U+200A, U+2028, U+2029, U+202F, U+205F, U+3000).</summary>
[Flags]
internal enum CodepointFlags : byte
{
    None = 0,
    Letter = 1,
    Number = 2,
    Punctuation = 4,
    Symbol = 8,
    Mark = 16,
    Other = 32,        // controls, format, separators, unassigned, private use
    Whitespace = 64,   // in addition to its category
}

internal static class CodepointClass
{
    private static readonly CodepointFlags[] Bmp = BuildBmp();

    private static CodepointFlags[] BuildBmp()
    {
        var table = new CodepointFlags[0x10000];
        for (int c = 0; c < table.Length; c++) table[c] = Compute(c);
        return table;
    }

    public static CodepointFlags Get(int cp) => (uint)cp < 0x10000u ? Bmp[cp] : Compute(cp);

    public static bool IsWhitespace(int cp) => (Get(cp) & CodepointFlags.Whitespace) != 0;
    public static bool IsLetter(int cp) => (Get(cp) & CodepointFlags.Letter) != 0;
    public static bool IsNumber(int cp) => (Get(cp) & CodepointFlags.Number) != 0;
    public static bool IsPunctuation(int cp) => (Get(cp) & CodepointFlags.Punctuation) != 0;

    private static CodepointFlags Compute(int cp)
    {
        if ((uint)cp > 0x10FFFF || cp is >= 0xD800 and <= 0xDFFF) return CodepointFlags.Other;
        var flags = CharUnicodeInfo.GetUnicodeCategory(cp) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => CodepointFlags.Letter,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => CodepointFlags.Number,
            UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation
                or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation
                or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation => CodepointFlags.Punctuation,
            UnicodeCategory.MathSymbol or UnicodeCategory.CurrencySymbol or UnicodeCategory.ModifierSymbol
                or UnicodeCategory.OtherSymbol => CodepointFlags.Symbol,
            UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark => CodepointFlags.Mark,
            _ => CodepointFlags.Other,
        };
        bool white = cp is >= 0x09 and <= 0x0D or 0x20 or 0x85 or 0xA0 or 0x1680 or (>= 0x2000 and <= 0x200A)
            or 0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000;
        return white ? flags | CodepointFlags.Whitespace : flags;
    }
}

/// <summary>Splits text (as code points) into the words that BPE merges run within. A pre-tokenizer is a
/// list of steps, each standing for one regular expression of llama.cpp's list for that
/// "tokenizer.ggml.pre" value: every step re-splits each piece of the previous step into its matches and
/// the unmatched stretches between them (both kept, in order). The steps are written by hand; there is no
/// regex engine.</summary>
internal sealed class PreTokenizer
{
    private readonly SplitStep[] _steps;
    public string Name { get; }

    private PreTokenizer(string name, params SplitStep[] steps) { Name = name; _steps = steps; }

    /// <summary>The pre-tokenizer for a "tokenizer.ggml.pre" value. A missing key (null) means the GPT-2 /
    /// GPT-NeoX rules (what BPE vocabularies converted without the key were trained with), not
    /// llama.cpp's "default" list, which is used only when the key says "default".</summary>
    public static PreTokenizer ForName(string? pre) => pre switch
    {
        null => Gpt2("gpt-2 (no tokenizer.ggml.pre)"),
        "gpt-2" or "mpt" or "phi-2" or "olmo" or "jais" or "gigachat" or "roberta-bpe"
            or "jina-es" or "jina-de" or "jina-v1-en" or "jina-v2-es" or "jina-v2-de" or "jina-v2-code" => Gpt2(pre),
        "default" => new PreTokenizer(pre,
            new ClassRunStep(Sets.DefaultPunct), new Gpt2Step(), new ClassRunStep(Sets.Number), new DigitTriplesStep()),
        "falcon" => new PreTokenizer(pre,
            new ClassRunStep(Sets.FalconPunct), new Gpt2Step(), new DigitTriplesStep()),
        "starcoder" or "refact" or "command-r" or "smollm" or "codeshell" or "exaone" or "minerva-7b" => new PreTokenizer(pre,
            new SingleCharStep(Sets.Number), new Gpt2Step()),
        "deepseek-coder" => new PreTokenizer(pre,
            new SingleCharStep(Sets.CrOrLf),
            new ClassRunStep(Sets.Letter, optionalLeadingSpace: true),
            new ClassRunStep(Sets.Punctuation, optionalLeadingSpace: true),
            new ClassRunStep(Sets.CjkOrHangul),
            new SingleCharStep(Sets.Number)),
        "deepseek-llm" => new PreTokenizer(pre,
            new SingleCharStep(Sets.CrOrLf),
            new ClassRunStep(Sets.DeepseekLetter, optionalLeadingSpace: true),
            new ClassRunStep(Sets.DeepseekPunctuation, optionalLeadingSpace: true),
            new TrailingWhitespaceStep(),
            new ClassRunStep(Sets.CjkOrHangul),
            new ClassRunStep(Sets.Number)),
        _ => throw new MicroLmException($"BPE pre-tokenizer '{pre}' (tokenizer.ggml.pre) is not supported"),
    };

    private static PreTokenizer Gpt2(string name) => new(name, new Gpt2Step());

    /// <summary>Appends the lengths (in code points) of the pieces of <paramref name="cps"/> to
    /// <paramref name="output"/>; the two scratch lists are working space.</summary>
    public void Split(ReadOnlySpan<int> cps, List<int> output, List<int> scratchA, List<int> scratchB)
    {
        if (cps.IsEmpty) return;
        var current = scratchA;
        var spare = scratchB;
        current.Clear();
        current.Add(cps.Length);
        for (int s = 0; s < _steps.Length; s++)
        {
            bool last = s == _steps.Length - 1;
            var target = last ? output : spare;
            if (!last) target.Clear();
            int start = 0;
            foreach (int len in current)
            {
                _steps[s].Split(cps, start, start + len, target);
                start += len;
            }
            if (!last) { spare = current; current = target; }
        }
    }

    /// <summary>The pieces as strings, for tests and diagnostics.</summary>
    public List<string> SplitToStrings(string text)
    {
        var cps = Utf.ToCodepoints(text);
        var lengths = new List<int>();
        Split(cps, lengths, new List<int>(), new List<int>());
        var result = new List<string>(lengths.Count);
        int start = 0;
        foreach (int len in lengths)
        {
            var sb = new System.Text.StringBuilder();
            for (int i = start; i < start + len; i++) sb.Append(char.ConvertFromUtf32(cps[i]));
            result.Add(sb.ToString());
            start += len;
        }
        return result;
    }
}

/// <summary>A set of code points, with the Basic Multilingual Plane precomputed as a bitmap.</summary>
internal sealed class CharSet
{
    private readonly ulong[] _bmp = new ulong[0x10000 / 64];
    private readonly Func<int, bool> _contains;

    public CharSet(Func<int, bool> contains)
    {
        _contains = contains;
        for (int c = 0; c < 0x10000; c++)
            if (contains(c)) _bmp[c >> 6] |= 1UL << (c & 63);
    }

    public bool Contains(int cp) => (uint)cp < 0x10000u ? (_bmp[cp >> 6] & (1UL << (cp & 63))) != 0 : _contains(cp);
}

/// <summary>Character sets of the pre-tokenizer expressions.</summary>
internal static class Sets
{
    /// <summary>deepseek-llm's letter class (cased letters of Latin, Greek, Cyrillic, Armenian, Georgian,
    /// Cherokee, Glagolitic, Coptic, Deseret, Osage, Old Hungarian, Warang Citi, Adlam, ...), as ranges.</summary>
    // Initialized before the sets below, which read it.
    private static readonly int[] DeepseekLetterRanges =
    [
        0x41, 0x5A, 0x61, 0x7A, 0xB5, 0xB5, 0xC0, 0xD6, 0xD8, 0xF6, 0xF8, 0x1BA, 0x1BC, 0x1BF, 0x1C4, 0x293,
        0x295, 0x2AF, 0x370, 0x373, 0x376, 0x377, 0x37B, 0x37D, 0x37F, 0x37F, 0x386, 0x386, 0x388, 0x38A,
        0x38C, 0x38C, 0x38E, 0x3A1, 0x3A3, 0x3F5, 0x3F7, 0x481, 0x48A, 0x52F, 0x531, 0x556, 0x10A0, 0x10C5,
        0x13A0, 0x13F5, 0x13F8, 0x13FD, 0x1C90, 0x1CBA, 0x1CBD, 0x1CBF, 0x1D00, 0x1D2B, 0x1D6B, 0x1D77,
        0x1D79, 0x1D9A, 0x1E00, 0x1F15, 0x1F18, 0x1F1D, 0x1F20, 0x1F45, 0x1F48, 0x1F4D, 0x1F50, 0x1F57,
        0x1F59, 0x1F59, 0x1F5B, 0x1F5B, 0x1F5D, 0x1F5D, 0x1F5F, 0x1F7D, 0x1F80, 0x1FB4, 0x1FB6, 0x1FBC,
        0x1FBE, 0x1FBE, 0x1FC2, 0x1FC4, 0x1FC6, 0x1FCC, 0x1FD0, 0x1FD3, 0x1FD6, 0x1FDB, 0x1FE0, 0x1FEC,
        0x1FF2, 0x1FF4, 0x1FF6, 0x1FFC, 0x2102, 0x2102, 0x2107, 0x2107, 0x210A, 0x2113, 0x2115, 0x2115,
        0x2119, 0x211D, 0x2124, 0x2124, 0x2126, 0x2126, 0x2128, 0x2128, 0x212A, 0x212D, 0x212F, 0x2134,
        0x2139, 0x2139, 0x213C, 0x213F, 0x2145, 0x2149, 0x214E, 0x214E, 0x2183, 0x2184, 0x2C00, 0x2C7B,
        0x2C7E, 0x2CE4, 0x2CEB, 0x2CEE, 0x2CF2, 0x2CF3, 0xA640, 0xA66D, 0xA680, 0xA69B, 0xA722, 0xA76F,
        0xA771, 0xA787, 0xA78B, 0xA78E, 0xAB70, 0xABBF, 0xFB00, 0xFB06, 0xFB13, 0xFB17, 0xFF21, 0xFF3A,
        0xFF41, 0xFF5A, 0x10400, 0x1044F, 0x104B0, 0x104D3, 0x104D8, 0x104FB, 0x10C80, 0x10CB2, 0x10CC0, 0x10CF2,
        0x118A0, 0x118DF, 0x1E900, 0x1E943,
    ];

    public static readonly CharSet Letter = new(CodepointClass.IsLetter);
    public static readonly CharSet Number = new(CodepointClass.IsNumber);
    public static readonly CharSet Punctuation = new(CodepointClass.IsPunctuation);
    public static readonly CharSet Whitespace = new(CodepointClass.IsWhitespace);
    public static readonly CharSet CrOrLf = new(IsCrOrLf);
    public static readonly CharSet CjkOrHangul = new(IsCjkOrHangul);
    public static readonly CharSet FalconPunct = new(FalconPunctuation);
    public static readonly CharSet DefaultPunct = new(DefaultPunctuation);
    public static readonly CharSet DeepseekLetter = new(IsDeepseekLetter);
    public static readonly CharSet DeepseekPunctuation = new(IsDeepseekPunctuation);

    // ASCII symbols that llama.cpp's lists add to \p{P} (the "default" list has no backtick).
    private static bool FalconPunctuation(int cp) => CodepointClass.IsPunctuation(cp) || cp is '$' or '+' or '<' or '=' or '>' or '^' or '~' or '|' or '`';
    private static bool DefaultPunctuation(int cp) => CodepointClass.IsPunctuation(cp) || cp is '$' or '+' or '<' or '=' or '>' or '^' or '~' or '|';
    private static bool IsCrOrLf(int cp) => cp is '\r' or '\n';

    /// <summary>U+4E00–U+9FA5, U+0800–U+4E00, U+AC00–U+D7FF (the deepseek CJK/Hangul run).</summary>
    private static bool IsCjkOrHangul(int cp) => cp is (>= 0x0800 and <= 0x9FA5) or (>= 0xAC00 and <= 0xD7FF);

    /// <summary>deepseek-llm's punctuation class: ASCII ! to / and : to ~ (which includes the ASCII letters),
    /// fullwidth ！ to ／ and ： to ～, quotes U+2018–U+201F and U+3001–U+3002. U+3000 is in the original range
    /// but is whitespace, which llama.cpp rewrites before matching, so it never matches.</summary>
    private static bool IsDeepseekPunctuation(int cp) => cp is (>= 0x21 and <= 0x2F) or (>= 0x3A and <= 0x7E)
        or (>= 0xFF01 and <= 0xFF0F) or (>= 0xFF1A and <= 0xFF5E) or (>= 0x2018 and <= 0x201F) or 0x3001 or 0x3002;

    private static bool IsDeepseekLetter(int cp)
    {
        if (cp < 0x80) return (uint)((cp | 0x20) - 'a') <= 'z' - 'a';
        // Binary search over the range starts.
        var r = DeepseekLetterRanges;
        int lo = 0, hi = r.Length / 2 - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >> 1;
            if (cp < r[2 * mid]) hi = mid - 1;
            else if (cp > r[2 * mid + 1]) lo = mid + 1;
            else return true;
        }
        return false;
    }
}

/// <summary>One expression of a pre-tokenizer: appends the lengths of the pieces of cps[start..end).</summary>
internal abstract class SplitStep
{
    public abstract void Split(ReadOnlySpan<int> cps, int start, int end, List<int> pieces);
}

/// <summary>A step that behaves like a regex search loop: the leftmost match, then the next one after it;
/// text between matches is kept as pieces of its own.</summary>
internal abstract class MatchStep : SplitStep
{
    /// <summary>Length of the match starting at <paramref name="pos"/>, 0 when none starts there.</summary>
    protected abstract int MatchAt(ReadOnlySpan<int> cps, int pos, int end);

    public override void Split(ReadOnlySpan<int> cps, int start, int end, List<int> pieces)
    {
        int gap = start, pos = start;
        while (pos < end)
        {
            int len = MatchAt(cps, pos, end);
            if (len == 0) { pos++; continue; }
            if (pos > gap) pieces.Add(pos - gap);
            pieces.Add(len);
            pos += len;
            gap = pos;
        }
        if (end > gap) pieces.Add(end - gap);
    }
}

/// <summary><c>[set]+</c>, or <c>\s?[set]+</c> with <c>optionalLeadingSpace</c>.</summary>
internal sealed class ClassRunStep(CharSet set, bool optionalLeadingSpace = false) : SplitStep
{
    public override void Split(ReadOnlySpan<int> cps, int start, int end, List<int> pieces)
    {
        int gap = start, pos = start;
        while (pos < end)
        {
            // Find where the next match starts.
            int c = cps[pos];
            int matchStart;
            if (set.Contains(c)) matchStart = pos;
            else if (optionalLeadingSpace && pos + 1 < end && Sets.Whitespace.Contains(c) && set.Contains(cps[pos + 1])) matchStart = pos++;
            else { pos++; continue; }
            pos++;
            while (pos < end && set.Contains(cps[pos])) pos++;
            if (matchStart > gap) pieces.Add(matchStart - gap);
            pieces.Add(pos - matchStart);
            gap = pos;
        }
        if (end > gap) pieces.Add(end - gap);
    }
}

/// <summary><c>[set]</c>: every member is a piece of its own.</summary>
internal sealed class SingleCharStep(CharSet set) : SplitStep
{
    public override void Split(ReadOnlySpan<int> cps, int start, int end, List<int> pieces)
    {
        int gap = start;
        for (int pos = start; pos < end; pos++)
        {
            if (!set.Contains(cps[pos])) continue;
            if (pos > gap) pieces.Add(pos - gap);
            pieces.Add(1);
            gap = pos + 1;
        }
        if (end > gap) pieces.Add(end - gap);
    }
}

/// <summary><c>[0-9][0-9][0-9]</c> (ASCII digits only).</summary>
internal sealed class DigitTriplesStep : MatchStep
{
    private static bool Digit(int c) => (uint)(c - '0') <= 9;
    protected override int MatchAt(ReadOnlySpan<int> cps, int pos, int end) =>
        pos + 2 < end && Digit(cps[pos]) && Digit(cps[pos + 1]) && Digit(cps[pos + 2]) ? 3 : 0;
}

/// <summary><c>\s+$</c>: the whitespace run that ends the piece, if any.</summary>
internal sealed class TrailingWhitespaceStep : SplitStep
{
    public override void Split(ReadOnlySpan<int> cps, int start, int end, List<int> pieces)
    {
        int t = end;
        while (t > start && Sets.Whitespace.Contains(cps[t - 1])) t--;
        if (t > start) pieces.Add(t - start);
        if (end > t) pieces.Add(end - t);
    }
}

/// <summary>GPT-2's expression <c>'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+</c>,
/// as llama.cpp evaluates it: contractions are lower case only; a whitespace run followed by a
/// non-space gives up its last character (which then leads the next word if it is a plain space).</summary>
internal sealed class Gpt2Step : SplitStep
{
    private const CodepointFlags WordLike = CodepointFlags.Whitespace | CodepointFlags.Letter | CodepointFlags.Number;

    public override void Split(ReadOnlySpan<int> cps, int start, int end, List<int> pieces)
    {
        int pos = start;
        while (pos < end)
        {
            int len = Next(cps, pos, end);
            pieces.Add(len);
            pos += len;
        }
    }

    private static int Next(ReadOnlySpan<int> cps, int pos, int end)
    {
        int c = cps[pos];
        if (c == '\'' && pos + 1 < end)
        {
            int c1 = cps[pos + 1];
            if (c1 is 's' or 't' or 'm' or 'd') return 2;
            if (pos + 2 < end)
            {
                int c2 = cps[pos + 2];
                if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
            }
        }

        // An optional plain space, then a run of letters, of numbers, or of other non-space characters.
        int first = c == ' ' ? pos + 1 : pos;
        var kind = first < end ? CodepointClass.Get(cps[first]) : CodepointFlags.None;
        int p = first + 1;
        if ((kind & CodepointFlags.Letter) != 0)
        {
            while (p < end && CodepointClass.IsLetter(cps[p])) p++;
            return p - pos;
        }
        if ((kind & CodepointFlags.Number) != 0)
        {
            while (p < end && CodepointClass.IsNumber(cps[p])) p++;
            return p - pos;
        }
        if (kind != CodepointFlags.None && (kind & WordLike) == 0)
        {
            while (p < end && (CodepointClass.Get(cps[p]) & WordLike) == 0) p++;
            return p - pos;
        }

        int spaces = 0;
        while (pos + spaces < end && CodepointClass.IsWhitespace(cps[pos + spaces])) spaces++;
        if (spaces > 1 && pos + spaces < end) return spaces - 1;   // \s+(?!\S)
        if (spaces > 0) return spaces;                              // \s+
        return 1;
    }
}

internal static class Utf
{
    /// <summary>The code points of a string; unpaired surrogates become U+FFFD (as UTF-8 encoding would).</summary>
    public static int[] ToCodepoints(string text)
    {
        var result = new int[text.Length];
        int n = 0;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                result[n++] = char.ConvertToUtf32(c, text[i + 1]);
                i++;
            }
            else result[n++] = char.IsSurrogate(c) ? 0xFFFD : c;
        }
        return n == result.Length ? result : result.AsSpan(0, n).ToArray();
    }

    /// <summary>Writes the UTF-8 form of one code point; returns its length (1–4).</summary>
    public static int Encode(int cp, Span<byte> dest)
    {
        if (cp < 0x80) { dest[0] = (byte)cp; return 1; }
        if (cp < 0x800) { dest[0] = (byte)(0xC0 | (cp >> 6)); dest[1] = (byte)(0x80 | (cp & 0x3F)); return 2; }
        if (cp < 0x10000)
        {
            dest[0] = (byte)(0xE0 | (cp >> 12)); dest[1] = (byte)(0x80 | ((cp >> 6) & 0x3F)); dest[2] = (byte)(0x80 | (cp & 0x3F));
            return 3;
        }
        dest[0] = (byte)(0xF0 | (cp >> 18)); dest[1] = (byte)(0x80 | ((cp >> 12) & 0x3F));
        dest[2] = (byte)(0x80 | ((cp >> 6) & 0x3F)); dest[3] = (byte)(0x80 | (cp & 0x3F));
        return 4;
    }
}
