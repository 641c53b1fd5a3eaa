using MicroLm.Gguf;

namespace MicroLm.Tokenizers;

/// <summary>Text ↔ token ids for one vocabulary, read from GGUF metadata ("tokenizer.ggml.*").</summary>
public abstract class Tokenizer
{
    public abstract int VocabSize { get; }
    public int BosId { get; protected init; } = -1;
    public int EosId { get; protected init; } = -1;
    /// <summary>Whether a BOS token starts the prompt by default ("tokenizer.ggml.add_bos_token").</summary>
    public bool AddBos { get; protected init; }

    /// <summary>Token ids of <paramref name="text"/>; special-token text is not parsed (it is plain text).</summary>
    public abstract List<int> Encode(string text, bool addBos);

    /// <summary>The bytes that token <paramref name="id"/> stands for when printed after <paramref name="previous"/>
    /// (-1 at the start). Control tokens give no bytes.</summary>
    public abstract ReadOnlySpan<byte> Decode(int previous, int id);

    /// <summary>The token's text as stored in the vocabulary, for diagnostics.</summary>
    public abstract string TokenText(int id);

    /// <summary>A token that ends a document: EOS, and BOS too (llama2.c's models emit BOS between
    /// stories, and llama2.c stops there).</summary>
    public bool IsEndOfGeneration(int id) => id == EosId || id == BosId && BosId >= 0;

    /// <summary>Decodes a whole sequence to a string (invalid UTF-8 becomes U+FFFD).</summary>
    public string DecodeAll(IEnumerable<int> ids)
    {
        var bytes = new List<byte>();
        int prev = -1;
        foreach (int id in ids) { bytes.AddRange(Decode(prev, id).ToArray()); prev = id; }
        return System.Text.Encoding.UTF8.GetString(bytes.ToArray());
    }

    public static Tokenizer Load(GgufFile file)
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

    protected static int OptionalId(GgufFile file, string key, int vocabSize)
    {
        if (!file.TryGet(key, out var v)) return -1;
        uint raw = v.AsUInt32Bits();
        return raw < (uint)vocabSize ? (int)raw : -1;
    }
}
