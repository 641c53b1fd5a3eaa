using MicroLm.Gguf;
using MicroLm.Tensors;
using MicroLm.Tensors.Quants;

namespace MicroLm.Synthetic;

/// <summary>The shape, tensor types and randomness of a synthetic LLaMA model.</summary>
internal sealed record SyntheticLlamaOptions
{
    public int Dim { get; init; } = 64;
    public int HiddenDim { get; init; } = 192;
    public int Layers { get; init; } = 2;
    public int Heads { get; init; } = 4;
    /// <summary>Key/value heads; fewer than <see cref="Heads"/> makes grouped-query attention.</summary>
    public int KvHeads { get; init; } = 4;
    public int ContextLength { get; init; } = 128;
    public float RopeFreqBase { get; init; } = 10000f;
    public float NormEpsilon { get; init; } = 1e-5f;
    /// <summary>True: no output.weight, the classifier is the embedding (llama.cpp then reuses token_embd).</summary>
    public bool TiedOutput { get; init; }
    public ulong Seed { get; init; } = 1;
    /// <summary>Null: a generated vocabulary of <see cref="VocabSize"/> pieces.</summary>
    public SyntheticVocabulary? Vocabulary { get; init; }
    public int VocabSize { get; init; } = 320;

    /// <summary>Type of every 2-D weight unless overridden. Norm vectors are always F32.</summary>
    public GgmlType MatrixType { get; init; } = GgmlType.F32;
    public GgmlType? EmbeddingType { get; init; }
    public GgmlType? OutputType { get; init; }
    /// <summary>Per-tensor types by GGUF name (e.g. "blk.0.attn_v.weight"), over all of the above.</summary>
    public IReadOnlyDictionary<string, GgmlType>? TypeOverrides { get; init; }

    /// <summary>Weights are N(0, (Scale/√fan_in)²): each matmul keeps unit-variance inputs near unit
    /// variance (std 0.03–0.13 for fan-ins 64–1024), so attention scores and logits are O(1)–O(few).</summary>
    public float WeightScale { get; init; } = 1f;
    /// <summary>Norm weights are 1 + NormJitter·N(0,1).</summary>
    public float NormJitter { get; init; } = 0.1f;
}

/// <summary>Writes LLaMA-architecture GGUF files with seeded random weights, in llama.cpp's key and
/// tensor names, for tests of any shape. A tensor's float values depend only on the seed, its name and
/// its shape, so the F32, F16 and Q8_0 versions of one model hold the same weights, rounded.</summary>
internal static class SyntheticLlama
{
    public static byte[] ToBytes(SyntheticLlamaOptions options) => Build(options).ToArray();

    public static void Write(string path, SyntheticLlamaOptions options) => Build(options).WriteTo(path);

    public static GgufWriter Build(SyntheticLlamaOptions o)
    {
        if (o.Dim <= 0 || o.HiddenDim <= 0 || o.Layers <= 0 || o.Heads <= 0 || o.KvHeads <= 0 || o.ContextLength <= 0)
            throw new ArgumentException($"bad shape: {o}");
        if (o.Dim % o.Heads != 0 || o.Heads % o.KvHeads != 0 || o.Dim / o.Heads % 2 != 0)
            throw new ArgumentException($"dim {o.Dim} must split into {o.Heads} heads of even size, and kv heads {o.KvHeads} must divide heads");
        var vocab = o.Vocabulary ?? SyntheticVocabulary.Generated(o.VocabSize);
        int headDim = o.Dim / o.Heads, kvDim = o.KvHeads * headDim, n = vocab.Count;

        var w = new GgufWriter();
        w.Add("general.architecture", "llama");
        w.Add("general.name", "synthetic");
        w.Add("llama.context_length", (uint)o.ContextLength);
        w.Add("llama.embedding_length", (uint)o.Dim);
        w.Add("llama.feed_forward_length", (uint)o.HiddenDim);
        w.Add("llama.block_count", (uint)o.Layers);
        w.Add("llama.attention.head_count", (uint)o.Heads);
        w.Add("llama.attention.head_count_kv", (uint)o.KvHeads);
        w.Add("llama.rope.dimension_count", (uint)headDim);
        w.Add("llama.rope.freq_base", o.RopeFreqBase);
        w.Add("llama.attention.layer_norm_rms_epsilon", o.NormEpsilon);
        w.Add("tokenizer.ggml.model", "llama");
        w.Add("tokenizer.ggml.tokens", vocab.Pieces);
        w.Add("tokenizer.ggml.scores", vocab.Scores);
        w.Add("tokenizer.ggml.token_type", vocab.Types);
        w.Add("tokenizer.ggml.unknown_token_id", 0u);
        w.Add("tokenizer.ggml.bos_token_id", 1u);
        w.Add("tokenizer.ggml.eos_token_id", 2u);

        GgmlType TypeOf(string name, GgmlType fallback) =>
            o.TypeOverrides is { } t && t.TryGetValue(name, out var type) ? type : fallback;
        void Matrix(string name, int cols, int rows, GgmlType fallback)
        {
            var type = TypeOf(name, fallback);
            var values = Normal(o.Seed, name, (long)cols * rows, o.WeightScale / MathF.Sqrt(cols));
            w.AddTensor(name, type, [cols, rows], Quantizer.Quantize(type, values, cols));
        }
        void Norm(string name)
        {
            var values = Normal(o.Seed, name, o.Dim, o.NormJitter);
            for (int i = 0; i < values.Length; i++) values[i] += 1f;
            w.AddTensor(name, GgmlType.F32, [o.Dim], Quantizer.Quantize(GgmlType.F32, values, o.Dim));
        }

        Matrix("token_embd.weight", o.Dim, n, o.EmbeddingType ?? o.MatrixType);
        Norm("output_norm.weight");
        if (!o.TiedOutput) Matrix("output.weight", o.Dim, n, o.OutputType ?? o.MatrixType);
        for (int l = 0; l < o.Layers; l++)
        {
            string p = $"blk.{l}.";
            Norm(p + "attn_norm.weight");
            Matrix(p + "attn_q.weight", o.Dim, o.Dim, o.MatrixType);
            Matrix(p + "attn_k.weight", o.Dim, kvDim, o.MatrixType);
            Matrix(p + "attn_v.weight", o.Dim, kvDim, o.MatrixType);
            Matrix(p + "attn_output.weight", o.Dim, o.Dim, o.MatrixType);
            Norm(p + "ffn_norm.weight");
            Matrix(p + "ffn_gate.weight", o.Dim, o.HiddenDim, o.MatrixType);
            Matrix(p + "ffn_up.weight", o.Dim, o.HiddenDim, o.MatrixType);
            Matrix(p + "ffn_down.weight", o.HiddenDim, o.Dim, o.MatrixType);
        }
        return w;
    }

    private static float[] Normal(ulong seed, string name, long count, float std)
    {
        var rng = new SyntheticRandom(SyntheticRandom.Derive(seed, name));
        var values = new float[count];
        for (long i = 0; i < count; i++) values[i] = rng.NextNormal() * std;
        return values;
    }
}
