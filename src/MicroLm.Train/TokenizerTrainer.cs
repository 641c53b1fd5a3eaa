using MicroLm.Gguf;
using MicroLm.Tokenizers;

namespace MicroLm.Train;

/// <summary>SentencePiece-style BPE: text is written with ▁ for spaces (and a ▁ prefix), cut into
/// chunks (a ▁ with the letters or digits after it, or one other character), and the most frequent
/// adjacent pair of pieces is merged until the vocabulary is full. Ties go to the ordinally smallest
/// pair, so the result is fixed by the text. The vocabulary is llama's layout: &lt;unk&gt;, &lt;s&gt;,
/// &lt;/s&gt;, the 256 byte tokens (for characters the corpus never showed), the corpus's characters,
/// then the merged pieces, scored so that earlier merges win (what <see cref="SentencePieceTokenizer"/> applies).</summary>
internal sealed class TrainedVocabulary
{
    public required string[] Pieces { get; init; }
    public required float[] Scores { get; init; }
    public required int[] Types { get; init; }
    public const int Unk = 0, Bos = 1, Eos = 2;

    public SentencePieceTokenizer CreateTokenizer() =>
        new(Pieces, Scores, Types, Bos, Eos, Unk, addBos: true, addSpacePrefix: true);

    public void WriteTo(GgufWriter w)
    {
        w.Add("tokenizer.ggml.model", "llama");
        w.Add("tokenizer.ggml.pre", "default");
        w.Add("tokenizer.ggml.tokens", Pieces);
        w.Add("tokenizer.ggml.scores", Scores);
        w.Add("tokenizer.ggml.token_type", Types);
        w.Add("tokenizer.ggml.bos_token_id", (uint)Bos);
        w.Add("tokenizer.ggml.eos_token_id", (uint)Eos);
        w.Add("tokenizer.ggml.unknown_token_id", (uint)Unk);
        w.Add("tokenizer.ggml.add_bos_token", true);
        w.Add("tokenizer.ggml.add_space_prefix", true);
    }

    public static TrainedVocabulary Train(IEnumerable<string> texts, int vocabSize)
    {
        const char Space = '\u2581';
        var chunkCounts = new Dictionary<string, long>(StringComparer.Ordinal);
        var charCounts = new Dictionary<char, long>();
        foreach (var text in texts)
        {
            string s = (" " + text).Replace(' ', Space);
            for (int i = 0; i < s.Length;)
            {
                int j = i + 1;
                if (s[i] == Space || char.IsLetterOrDigit(s[i]))
                    while (j < s.Length && char.IsLetterOrDigit(s[j]) && (char.IsDigit(s[j]) == char.IsDigit(s[j - 1]) || s[j - 1] == Space)) j++;
                string chunk = s[i..j];
                chunkCounts[chunk] = chunkCounts.GetValueOrDefault(chunk) + 1;
                i = j;
            }
            foreach (char c in s) charCounts[c] = charCounts.GetValueOrDefault(c) + 1;
        }

        var pieces = new List<string> { "<unk>", "<s>", "</s>" };
        var types = new List<int> { SentencePieceTokenizer.TypeUnknown, SentencePieceTokenizer.TypeControl, SentencePieceTokenizer.TypeControl };
        for (int b = 0; b < 256; b++) { pieces.Add($"<0x{b:X2}>"); types.Add(SentencePieceTokenizer.TypeByte); }
        var known = new HashSet<string>(pieces, StringComparer.Ordinal);
        foreach (var (c, _) in charCounts.OrderByDescending(p => p.Value).ThenBy(p => p.Key))
        {
            if (char.IsSurrogate(c) || !known.Add(c.ToString())) continue;
            pieces.Add(c.ToString()); types.Add(SentencePieceTokenizer.TypeNormal);
        }
        int firstMerge = pieces.Count;
        if (vocabSize < firstMerge) throw new MicroLmException($"a vocabulary of {vocabSize} cannot hold the {firstMerge} base pieces");

        // Each distinct chunk as a list of pieces, with its count.
        var words = chunkCounts.OrderBy(p => p.Key, StringComparer.Ordinal)
            .Select(p => (Symbols: p.Key.Select(c => c.ToString()).ToList(), Count: p.Value)).ToList();
        while (pieces.Count < vocabSize)
        {
            var pairs = new Dictionary<(string, string), long>();
            foreach (var (symbols, count) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                    pairs[(symbols[i], symbols[i + 1])] = pairs.GetValueOrDefault((symbols[i], symbols[i + 1])) + count;
            (string L, string R) best = default;
            long bestCount = 0;
            foreach (var (pair, count) in pairs)
            {
                if (count > bestCount || count == bestCount && Compare(pair, best) < 0) { best = pair; bestCount = count; }
            }
            if (bestCount < 2) break; // nothing left worth a piece
            string merged = best.L + best.R;
            foreach (var (symbols, _) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                    if (symbols[i] == best.L && symbols[i + 1] == best.R) { symbols[i] = merged; symbols.RemoveAt(i + 1); }
            if (known.Add(merged)) { pieces.Add(merged); types.Add(SentencePieceTokenizer.TypeNormal); }
        }

        var scores = new float[pieces.Count];
        for (int i = 0; i < pieces.Count; i++)
            scores[i] = i >= firstMerge ? -(i - firstMerge) : i >= 259 ? -(pieces.Count + i) : 0f;
        return new TrainedVocabulary { Pieces = [.. pieces], Scores = scores, Types = [.. types] };

        static int Compare((string L, string R) a, (string L, string R) b)
        {
            int c = string.CompareOrdinal(a.L, b.L);
            return c != 0 ? c : string.CompareOrdinal(a.R, b.R);
        }
    }
}
