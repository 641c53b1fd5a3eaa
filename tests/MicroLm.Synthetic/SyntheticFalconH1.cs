using MicroLm.Gguf;
using MicroLm.Tensors;
using MicroLm.Tensors.Quants;

namespace MicroLm.Synthetic;

/// <summary>The shape, tensor types and randomness of a synthetic Falcon-H1 model (attention and a Mamba2
/// mixer side by side in every layer, then a SwiGLU feed-forward block). Defaults: a small GQA shape with
/// two SSM groups.</summary>
internal sealed record SyntheticFalconH1Options
{
    public int Dim { get; init; } = 64;
    public int HiddenDim { get; init; } = 160;
    public int Layers { get; init; } = 2;
    public int Heads { get; init; } = 4;
    public int KvHeads { get; init; } = 2;
    /// <summary>Attention head size ("attention.key_length"); 0: Dim / Heads.</summary>
    public int HeadDim { get; init; }
    public int ContextLength { get; init; } = 256;
    /// <summary>Falcon-H1 trains with a rotary base of 10^11.</summary>
    public float RopeFreqBase { get; init; } = 1e11f;
    public float NormEpsilon { get; init; } = 1e-5f;

    /// <summary>"ssm.conv_kernel".</summary>
    public int ConvKernel { get; init; } = 4;
    /// <summary>"ssm.inner_size" (mamba_d_ssm).</summary>
    public int SsmInner { get; init; } = 128;
    /// <summary>"ssm.state_size" (mamba_d_state).</summary>
    public int SsmState { get; init; } = 16;
    /// <summary>"ssm.time_step_rank": the number of SSM heads (mamba_n_heads).</summary>
    public int SsmHeads { get; init; } = 8;
    /// <summary>"ssm.group_count" (mamba_n_groups).</summary>
    public int SsmGroups { get; init; } = 2;
    /// <summary>Write ssm_norm (Falcon-H1's mamba_rms_norm; the Tiny models have none).</summary>
    public bool SsmNorm { get; init; } = true;

    public bool TiedOutput { get; init; }
    /// <summary>Name the feed-forward norm "blk.N.ffn_norm.weight" (as converters may) instead of
    /// llama.cpp's "blk.N.ffn_norm".</summary>
    public bool FfnNormWithSuffix { get; init; }
    public ulong Seed { get; init; } = 1;
    /// <summary>Null: a generated vocabulary of <see cref="VocabSize"/> pieces.</summary>
    public SyntheticVocabulary? Vocabulary { get; init; }
    public int VocabSize { get; init; } = 320;

    /// <summary>Type of every 2-D matrix (embedding, attention, ssm_in/ssm_out, feed-forward, classifier).
    /// The convolution weights and every vector stay F32, as llama.cpp's converter and quantizer keep them.</summary>
    public GgmlType MatrixType { get; init; } = GgmlType.F32;
    public float WeightScale { get; init; } = 1f;
    public float NormJitter { get; init; } = 0.1f;

    /// <summary>Tensors left out (tests of error messages).</summary>
    public IReadOnlySet<string>? OmitTensors { get; init; }
    /// <summary>Integer metadata written with another value than the shape's (tests of error messages),
    /// by key without the "falcon-h1." prefix, e.g. "ssm.inner_size".</summary>
    public IReadOnlyDictionary<string, uint>? KeyOverrides { get; init; }
    /// <summary>Integer metadata left out, by key without the "falcon-h1." prefix.</summary>
    public IReadOnlySet<string>? OmitKeys { get; init; }
}

/// <summary>Writes Falcon-H1 ("falcon-h1") GGUF files with seeded random weights in llama.cpp's key and tensor
/// names, as convert_hf_to_gguf.py writes a FalconH1ForCausalLM checkpoint (its multipliers already folded into
/// the weights; ssm_a holds A = −exp(A_log)). A tensor's values depend only on the seed, its name and its size.
/// Ranges are chosen so every part of the mixer matters: Δ = softplus(dt) spans ~0.01–3, A ∈ [−8, −0.1].</summary>
internal static class SyntheticFalconH1
{
    /// <summary>Falcon-H1-Tiny-90M's shape (tiiuae's config.json: hidden 512, 24 layers, 8 attention heads of
    /// 64 with 2 KV heads, FFN 768, mamba_d_ssm 768 in 24 heads of 32, d_state 64, 1 group, conv 4, no
    /// mamba_rms_norm, rope_theta 1e11), untied classifier. The vocabulary size is ours (32768: the files we
    /// read do not state it).</summary>
    public static SyntheticFalconH1Options Tiny90M(GgmlType type = GgmlType.F32, ulong seed = 90, int vocabSize = 32768) => new()
    {
        Dim = 512, HiddenDim = 768, Layers = 24, Heads = 8, KvHeads = 2, HeadDim = 64, ContextLength = 2048,
        ConvKernel = 4, SsmInner = 768, SsmState = 64, SsmHeads = 24, SsmGroups = 1, SsmNorm = false,
        VocabSize = vocabSize, MatrixType = type, Seed = seed,
    };

    public static void Write(string path, SyntheticFalconH1Options options) => Build(options).WriteTo(path);

    public static byte[] ToBytes(SyntheticFalconH1Options options) => Build(options).ToArray();

    public static GgufWriter Build(SyntheticFalconH1Options o)
    {
        int headDim = o.HeadDim > 0 ? o.HeadDim : o.Dim / System.Math.Max(o.Heads, 1);
        if (o.Dim <= 0 || o.HiddenDim <= 0 || o.Layers <= 0 || o.Heads <= 0 || o.KvHeads <= 0 || o.Heads % o.KvHeads != 0 || headDim % 2 != 0)
            throw new ArgumentException($"bad attention shape: {o}");
        if (o.SsmHeads <= 0 || o.SsmGroups <= 0 || o.SsmInner % o.SsmHeads != 0 || o.SsmHeads % o.SsmGroups != 0 || o.ConvKernel < 1)
            throw new ArgumentException($"bad SSM shape: {o}");
        var vocab = o.Vocabulary ?? SyntheticVocabulary.Generated(o.VocabSize);
        int n = vocab.Count, qDim = o.Heads * headDim, kvDim = o.KvHeads * headDim;
        int convChannels = o.SsmInner + 2 * o.SsmGroups * o.SsmState;
        int projection = o.SsmInner + convChannels + o.SsmHeads;

        var w = new GgufWriter();
        const string arch = "falcon-h1";
        void U(string key, int value)
        {
            if (o.OmitKeys?.Contains(key) != true) w.Add($"{arch}.{key}", o.KeyOverrides is { } k && k.TryGetValue(key, out var v) ? v : (uint)value);
        }
        w.Add("general.architecture", arch);
        w.Add("general.name", "synthetic-falcon-h1");
        U("context_length", o.ContextLength);
        U("embedding_length", o.Dim);
        U("feed_forward_length", o.HiddenDim);
        U("block_count", o.Layers);
        U("attention.head_count", o.Heads);
        U("attention.head_count_kv", o.KvHeads);
        U("attention.key_length", headDim);
        U("attention.value_length", headDim);
        w.Add($"{arch}.rope.freq_base", o.RopeFreqBase);
        w.Add($"{arch}.attention.layer_norm_rms_epsilon", o.NormEpsilon);
        U("ssm.conv_kernel", o.ConvKernel);
        U("ssm.inner_size", o.SsmInner);
        U("ssm.state_size", o.SsmState);
        U("ssm.time_step_rank", o.SsmHeads);
        U("ssm.group_count", o.SsmGroups);
        U("vocab_size", n);
        w.Add("tokenizer.ggml.model", "llama");
        w.Add("tokenizer.ggml.tokens", vocab.Pieces);
        w.Add("tokenizer.ggml.scores", vocab.Scores);
        w.Add("tokenizer.ggml.token_type", vocab.Types);
        w.Add("tokenizer.ggml.unknown_token_id", 0u);
        w.Add("tokenizer.ggml.bos_token_id", 1u);
        w.Add("tokenizer.ggml.eos_token_id", 2u);

        bool Omit(string name) => o.OmitTensors?.Contains(name) == true;
        void Matrix(string name, int cols, int rows, float? std = null)
        {
            if (Omit(name)) return;
            var values = Normal(o.Seed, name, (long)cols * rows, std ?? o.WeightScale / MathF.Sqrt(cols));
            w.AddTensor(name, o.MatrixType, [cols, rows], Quantizer.Quantize(o.MatrixType, values, cols));
        }
        void Floats(string name, long[] shape, float[] values)
        {
            if (Omit(name)) return;
            w.AddTensor(name, GgmlType.F32, shape, Quantizer.Quantize(GgmlType.F32, values, values.Length));
        }
        float[] Around(string name, int count, float mean, float std)
        {
            var v = Normal(o.Seed, name, count, std);
            for (int i = 0; i < count; i++) v[i] += mean;
            return v;
        }
        void Norm(string name, int count, string? valuesOf = null) => Floats(name, [count], Around(valuesOf ?? name, count, 1f, o.NormJitter));

        Matrix("token_embd.weight", o.Dim, n);
        Norm("output_norm.weight", o.Dim);
        if (!o.TiedOutput) Matrix("output.weight", o.Dim, n);
        for (int l = 0; l < o.Layers; l++)
        {
            string p = $"blk.{l}.";
            Norm(p + "attn_norm.weight", o.Dim);
            Matrix(p + "attn_q.weight", o.Dim, qDim);
            Matrix(p + "attn_k.weight", o.Dim, kvDim);
            Matrix(p + "attn_v.weight", o.Dim, kvDim);
            Matrix(p + "attn_output.weight", qDim, o.Dim);

            Matrix(p + "ssm_in.weight", o.Dim, projection);
            Floats(p + "ssm_conv1d.weight", [o.ConvKernel, convChannels],
                Normal(o.Seed, p + "ssm_conv1d.weight", (long)o.ConvKernel * convChannels, 1f / MathF.Sqrt(o.ConvKernel)));
            Floats(p + "ssm_conv1d.bias", [convChannels], Around(p + "ssm_conv1d.bias", convChannels, 0f, 0.1f));
            // dt + bias ≈ N(−1.5, 1.1²): Δ = softplus(·) mostly 0.05–1.5.
            Floats(p + "ssm_dt.bias", [o.SsmHeads], Around(p + "ssm_dt.bias", o.SsmHeads, -1.5f, 0.5f));
            // A = −exp(A_log), A_log ∈ [−2.3, 2.1) (DetMath: the same bits on every machine): fast to slow decays.
            var aLog = Uniform(o.Seed, p + "ssm_a", o.SsmHeads, -2.3f, 2.1f);
            Floats(p + "ssm_a", [1, o.SsmHeads], aLog.Select(x => -MicroLm.Math.DetMath.Exp(x)).ToArray());
            Floats(p + "ssm_d", [1, o.SsmHeads], Around(p + "ssm_d", o.SsmHeads, 1f, 0.1f));
            if (o.SsmNorm)
                Floats(p + "ssm_norm.weight", [o.SsmInner / o.SsmGroups, o.SsmGroups], Around(p + "ssm_norm.weight", o.SsmInner, 1f, o.NormJitter));
            Matrix(p + "ssm_out.weight", o.SsmInner, o.Dim);

            Norm(p + (o.FfnNormWithSuffix ? "ffn_norm.weight" : "ffn_norm"), o.Dim, valuesOf: p + "ffn_norm"); // same values either way
            Matrix(p + "ffn_gate.weight", o.Dim, o.HiddenDim);
            Matrix(p + "ffn_up.weight", o.Dim, o.HiddenDim);
            Matrix(p + "ffn_down.weight", o.HiddenDim, o.Dim);
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

    private static float[] Uniform(ulong seed, string name, int count, float low, float high)
    {
        var rng = new SyntheticRandom(SyntheticRandom.Derive(seed, name));
        var values = new float[count];
        for (int i = 0; i < count; i++) values[i] = low + (high - low) * rng.NextFloat();
        return values;
    }
}
