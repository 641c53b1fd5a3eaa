using MicroLm.Models;
using MicroLm.Tokenizers;

namespace MicroLm.Synthetic;

/// <summary>A SentencePiece-style ("llama") vocabulary as GGUF stores it: pieces with ▁ for spaces,
/// scores (higher merges first) and token types. Ids 0, 1, 2 are &lt;unk&gt;, &lt;s&gt;, &lt;/s&gt;.</summary>
internal sealed record SyntheticVocabulary(string[] Pieces, float[] Scores, int[] Types)
{
    public int Count => Pieces.Length;

    /// <summary>A llama2.c tokenizer file (e.g. tokenizer.bin, 32000 pieces; tok512.bin), with the piece
    /// texts and types the llama2.c → GGUF converter writes.</summary>
    public static SyntheticVocabulary FromLlama2c(string path, int vocabSize)
    {
        var (pieces, scores) = Llama2cCheckpoint.ReadTokenizer(File.ReadAllBytes(path), vocabSize);
        return new SyntheticVocabulary(
            pieces.Select((p, i) => Llama2cCheckpoint.GgufPiece(p, i)).ToArray(),
            scores,
            pieces.Select((p, i) => Llama2cCheckpoint.TokenType(p, i)).ToArray());
    }

    private const string TrainingText =
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. " +
        "One day, she saw a big red ball under a tree. Lily wanted to play with the ball, but it was too high. " +
        "Her mom said, \"Be careful, Lily!\" Tom was a happy boy who liked to run and jump. He had a small dog named Max. " +
        "They went to the garden and found a shiny stone. The sun was warm and the sky was blue. " +
        "The bird sang a song and the children laughed. At the end of the day, they were tired but happy. " +
        "The end. 0123456789 ?!:;'-()";

    /// <summary>A small vocabulary made without any file: the three control tokens, the 256 byte tokens
    /// &lt;0x00&gt;…&lt;0xFF&gt; (the fallback for any character), the characters of a short built-in story, then
    /// BPE merges learned from that story (most frequent pair first, score −rank), then, if
    /// <paramref name="size"/> asks for more, filler pieces that never occur in text. At least 259.</summary>
    public static SyntheticVocabulary Generated(int size)
    {
        if (size < 259) throw new ArgumentOutOfRangeException(nameof(size), size, "a generated vocabulary holds at least the 3 control and 256 byte tokens");
        var pieces = new List<string> { "<unk>", "<s>", "</s>" };
        var scores = new List<float> { 0, 0, 0 };
        var types = new List<int> { SentencePieceTokenizer.TypeUnknown, SentencePieceTokenizer.TypeControl, SentencePieceTokenizer.TypeControl };
        for (int b = 0; b < 256; b++) { pieces.Add($"<0x{b:X2}>"); scores.Add(0); types.Add(SentencePieceTokenizer.TypeByte); }
        var known = new HashSet<string>(pieces, StringComparer.Ordinal);
        void Add(string piece)
        {
            if (pieces.Count >= size || !known.Add(piece)) return;
            pieces.Add(piece);
            scores.Add(-(pieces.Count - 259));
            types.Add(SentencePieceTokenizer.TypeNormal);
        }

        // Words as SentencePiece sees them: each starts with ▁.
        var words = TrainingText.Split(' ').Select(w => "\u2581" + w).ToList();
        foreach (var c in string.Concat(words).Select(c => c.ToString()).Distinct().OrderBy(c => c, StringComparer.Ordinal)) Add(c);
        var split = words.Select(w => w.Select(c => c.ToString()).ToList()).ToList();
        while (pieces.Count < size)
        {
            var counts = new Dictionary<(string, string), int>();
            foreach (var w in split)
                for (int i = 0; i + 1 < w.Count; i++)
                    counts[(w[i], w[i + 1])] = counts.GetValueOrDefault((w[i], w[i + 1])) + 1;
            if (counts.Count == 0) break;
            var best = counts.OrderByDescending(kv => kv.Value)
                .ThenBy(kv => kv.Key.Item1 + "\0" + kv.Key.Item2, StringComparer.Ordinal).First().Key;
            Add(best.Item1 + best.Item2);
            foreach (var w in split)
                for (int i = 0; i + 1 < w.Count; i++)
                    if (w[i] == best.Item1 && w[i + 1] == best.Item2) { w[i] += w[i + 1]; w.RemoveAt(i + 1); }
        }
        for (int n = 0; pieces.Count < size; n++) Add($"\u2581zq{n}x"); // never produced by the merges above
        return new SyntheticVocabulary(pieces.ToArray(), scores.ToArray(), types.ToArray());
    }
}
