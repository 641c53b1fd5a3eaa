using MicroLm.Gguf;
using MicroLm.Tensors;
using MicroLm.Tensors.Quants;

namespace MicroLm.Synthetic;

/// <summary>The shape, tensor types and randomness of a synthetic GPT-NeoX model. Defaults: Pythia-14M.</summary>
internal sealed record SyntheticGptNeoXOptions
{
    public int Dim { get; init; } = 128;
    public int HiddenDim { get; init; } = 512;
    public int Layers { get; init; } = 6;
    public int Heads { get; init; } = 4;
    public int ContextLength { get; init; } = 2048;
    /// <summary>Fraction of each head that is rotated (Pythia: 0.25); "rope.dimension_count" = RotaryPct·headDim.</summary>
    public float RotaryPct { get; init; } = 0.25f;
    public float RopeFreqBase { get; init; } = 10000f;
    public float NormEpsilon { get; init; } = 1e-5f;
    public bool ParallelResidual { get; init; } = true;
    public ulong Seed { get; init; } = 1;
    /// <summary>Rows of the embedding and classifier, and the number of tokens written (Pythia pads its
    /// vocabulary to 50304: the tokenizer's 50277 tokens, then "[PADn]" user-defined tokens, as
    /// convert_hf_to_gguf.py writes them). llama.cpp requires the two counts to be equal.</summary>
    public int VocabSize { get; init; } = 50304;
    /// <summary>A GGUF file whose tokenizer.* metadata (a "gpt2" BPE vocabulary) is copied; its token
    /// list is cut or padded with "[PADn]" to <see cref="VocabSize"/>.</summary>
    public required string TokenizerFile { get; init; }

    /// <summary>Type of every 2-D weight. Norm weights and biases are always F32 (as llama.cpp's converter keeps 1-D tensors).</summary>
    public GgmlType MatrixType { get; init; } = GgmlType.F32;
    public float WeightScale { get; init; } = 1f;
    /// <summary>Norm weights are 1 + NormJitter·N(0,1); norm biases and projection biases are BiasScale·N(0,1).</summary>
    public float NormJitter { get; init; } = 0.1f;
    public float BiasScale { get; init; } = 0.1f;
    /// <summary>Tensors left out (tests of error messages; the caller may add its own version to the writer).</summary>
    public IReadOnlySet<string>? OmitTensors { get; init; }
}

/// <summary>Writes GPT-NeoX ("gptneox") GGUF files with seeded random weights in llama.cpp's key and tensor
/// names: attn_qkv holds the Q rows, then K, then V (convert_hf_to_gguf.py's order). Like
/// <see cref="SyntheticLlama"/>, a tensor's values depend only on the seed, its name and its size.</summary>
internal static class SyntheticGptNeoX
{
    /// <summary>Pythia's shapes (d_model, layers, heads, FFN): 14M, 31M, 70M. All have 6 layers, rotary_pct 0.25,
    /// parallel residual, context 2048 and the 50304-row padded vocabulary.</summary>
    public static SyntheticGptNeoXOptions Pythia(string size, string tokenizerFile, GgmlType type = GgmlType.F32, ulong seed = 1) => size switch
    {
        "14M" => new() { Dim = 128, HiddenDim = 512, Heads = 4, TokenizerFile = tokenizerFile, MatrixType = type, Seed = seed },
        "31M" => new() { Dim = 256, HiddenDim = 1024, Heads = 8, TokenizerFile = tokenizerFile, MatrixType = type, Seed = seed },
        "70M" => new() { Dim = 512, HiddenDim = 2048, Heads = 8, TokenizerFile = tokenizerFile, MatrixType = type, Seed = seed },
        _ => throw new ArgumentException($"unknown Pythia size '{size}' (14M, 31M, 70M)"),
    };

    public static void Write(string path, SyntheticGptNeoXOptions options) => Build(options).WriteTo(path);

    public static byte[] ToBytes(SyntheticGptNeoXOptions options) => Build(options).ToArray();

    public static GgufWriter Build(SyntheticGptNeoXOptions o)
    {
        if (o.Dim <= 0 || o.HiddenDim <= 0 || o.Layers <= 0 || o.Heads <= 0 || o.ContextLength <= 0 || o.VocabSize <= 0)
            throw new ArgumentException($"bad shape: {o}");
        if (o.Dim % o.Heads != 0) throw new ArgumentException($"dim {o.Dim} must split into {o.Heads} heads");
        int headDim = o.Dim / o.Heads;
        int ropeDims = (int)(o.RotaryPct * headDim);
        if (ropeDims <= 0 || ropeDims % 2 != 0) throw new ArgumentException($"rotary dims {ropeDims} must be even and positive");

        var w = new GgufWriter();
        w.Add("general.architecture", "gptneox");
        w.Add("general.name", "synthetic-gptneox");
        w.Add("gptneox.context_length", (uint)o.ContextLength);
        w.Add("gptneox.embedding_length", (uint)o.Dim);
        w.Add("gptneox.block_count", (uint)o.Layers);
        w.Add("gptneox.feed_forward_length", (uint)o.HiddenDim);
        w.Add("gptneox.rope.dimension_count", (uint)ropeDims);
        w.Add("gptneox.rope.freq_base", o.RopeFreqBase);
        w.Add("gptneox.attention.head_count", (uint)o.Heads);
        w.Add("gptneox.use_parallel_residual", o.ParallelResidual);
        w.Add("gptneox.attention.layer_norm_epsilon", o.NormEpsilon);
        CopyTokenizer(w, o.TokenizerFile, o.VocabSize);

        bool Omit(string name) => o.OmitTensors?.Contains(name) == true;
        void Matrix(string name, int cols, int rows)
        {
            if (Omit(name)) return;
            var values = Normal(o.Seed, name, (long)cols * rows, o.WeightScale / MathF.Sqrt(cols));
            w.AddTensor(name, o.MatrixType, [cols, rows], Quantizer.Quantize(o.MatrixType, values, cols));
        }
        void Vector(string name, int n, float offset, float std)
        {
            if (Omit(name)) return;
            var values = Normal(o.Seed, name, n, std);
            for (int i = 0; i < n; i++) values[i] += offset;
            w.AddTensor(name, GgmlType.F32, [n], Quantizer.Quantize(GgmlType.F32, values, n));
        }
        void Norm(string prefix) { Vector(prefix + ".weight", o.Dim, 1f, o.NormJitter); Vector(prefix + ".bias", o.Dim, 0f, o.BiasScale); }

        Matrix("token_embd.weight", o.Dim, o.VocabSize);
        Norm("output_norm");
        Matrix("output.weight", o.Dim, o.VocabSize);
        for (int l = 0; l < o.Layers; l++)
        {
            string p = $"blk.{l}.";
            Norm(p + "attn_norm");
            Matrix(p + "attn_qkv.weight", o.Dim, 3 * o.Dim);
            Vector(p + "attn_qkv.bias", 3 * o.Dim, 0f, o.BiasScale);
            Matrix(p + "attn_output.weight", o.Dim, o.Dim);
            Vector(p + "attn_output.bias", o.Dim, 0f, o.BiasScale);
            Norm(p + "ffn_norm");
            Matrix(p + "ffn_up.weight", o.Dim, o.HiddenDim);
            Vector(p + "ffn_up.bias", o.HiddenDim, 0f, o.BiasScale);
            Matrix(p + "ffn_down.weight", o.HiddenDim, o.Dim);
            Vector(p + "ffn_down.bias", o.Dim, 0f, o.BiasScale);
        }
        return w;
    }

    /// <summary>Copies tokenizer.ggml.{model, tokens, token_type, merges, pre, special ids, add_bos/eos}
    /// from <paramref name="path"/>, with the token list cut or padded to <paramref name="vocabSize"/>.</summary>
    public static void CopyTokenizer(GgufWriter w, string path, int vocabSize)
    {
        using var file = GgufFile.Open(path);
        string model = file.GetString("tokenizer.ggml.model") ?? throw new ArgumentException($"{path} has no tokenizer");
        var tokens = file.Get("tokenizer.ggml.tokens").AsStringArray();
        int[] types = file.TryGet("tokenizer.ggml.token_type", out var t) ? t.AsSpan<int>().ToArray() : Enumerable.Repeat(1, tokens.Length).ToArray();
        const int userDefined = 4;
        var outTokens = new string[vocabSize];
        var outTypes = new int[vocabSize];
        for (int i = 0; i < vocabSize; i++)
        {
            outTokens[i] = i < tokens.Length ? tokens[i] : $"[PAD{i}]";
            outTypes[i] = i < tokens.Length ? types[i] : userDefined;
        }
        w.Add("tokenizer.ggml.model", model);
        if (file.GetString("tokenizer.ggml.pre") is { } pre) w.Add("tokenizer.ggml.pre", pre);
        w.Add("tokenizer.ggml.tokens", outTokens);
        w.Add("tokenizer.ggml.token_type", outTypes);
        if (file.TryGet("tokenizer.ggml.merges", out var merges)) w.Add("tokenizer.ggml.merges", merges.AsStringArray());
        foreach (var key in new[] { "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id" })
            if (file.GetInt(key) is { } id && id < vocabSize) w.Add(key, (uint)id);
        foreach (var key in new[] { "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token" })
            if (file.GetBool(key) is { } b) w.Add(key, b);
    }

    private static float[] Normal(ulong seed, string name, long count, float std)
    {
        var rng = new SyntheticRandom(SyntheticRandom.Derive(seed, name));
        var values = new float[count];
        for (long i = 0; i < count; i++) values[i] = rng.NextNormal() * std;
        return values;
    }
}
