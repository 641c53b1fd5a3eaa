using MicroLm.Gguf;

namespace MicroLm.Models;

/// <summary>Hyperparameters of a decoder-only transformer, read from llama.cpp's GGUF keys
/// ("{arch}.embedding_length" and so on).</summary>
internal sealed record ModelConfig
{
    public required string Architecture { get; init; }
    public required int Dim { get; init; }
    public required int HiddenDim { get; init; }
    public required int Layers { get; init; }
    public required int Heads { get; init; }
    public required int KvHeads { get; init; }
    public required int HeadDim { get; init; }
    public required int ContextLength { get; init; }
    public required int VocabSize { get; init; }
    public required int RopeDims { get; init; }
    public required float RopeFreqBase { get; init; }
    public required float NormEpsilon { get; init; }

    /// <summary>Per layer, the positions its attention sees: 0 = every earlier position (the default for a
    /// layer not listed), W = the token and the W − 1 before it (GPT-Neo's local layers).</summary>
    public IReadOnlyList<int> AttentionWindows { get; init; } = [];

    public int KvDim => KvHeads * HeadDim;

    /// <summary>Bytes of every layer's recurrent state (Falcon-H1's Mamba2 convolution window and SSM state; 0 for
    /// attention-only families). Constant: it does not depend on the context length.</summary>
    public long RecurrentStateBytes { get; init; }

    public int AttentionWindow(int layer) => layer < AttentionWindows.Count ? AttentionWindows[layer] : 0;

    public static readonly string[] KnownArchitectures = ["llama", "gptneox", "gptneo", "falcon-h1"];

    public static ModelConfig FromGguf(GgufFile file)
    {
        string arch = file.Architecture ?? throw new MicroLmException("model has no general.architecture key");
        if (!KnownArchitectures.Contains(arch))
            throw new MicroLmException($"unknown architecture '{arch}' (supported: {string.Join(", ", KnownArchitectures)})");
        int Req(string key)
        {
            long v = file.GetInt($"{arch}.{key}") ?? throw new MicroLmException($"model is missing metadata key '{arch}.{key}'");
            if (v <= 0 || v > 1 << 24) throw new MicroLmException($"metadata '{arch}.{key}' = {v} is out of range");
            return (int)v;
        }
        int dim = Req("embedding_length");
        int heads = Req("attention.head_count");
        int kvHeads = (int)(file.GetInt($"{arch}.attention.head_count_kv") ?? heads);
        if (kvHeads <= 0 || heads % kvHeads != 0)
            throw new MicroLmException($"attention.head_count_kv = {kvHeads} must divide head_count = {heads}");
        int headDim = (int)(file.GetInt($"{arch}.attention.key_length") ?? (dim % heads == 0 ? dim / heads : 0));
        if (headDim <= 0) throw new MicroLmException($"embedding_length {dim} is not a multiple of head_count {heads}");
        int vocab = (int)(file.GetInt($"{arch}.vocab_size")
            ?? (file.TryGet("tokenizer.ggml.tokens", out var toks) ? toks.Count : 0));
        if (vocab <= 0)
        {
            var emb = file.FindTensor("token_embd.weight");
            vocab = emb is { Shape.Length: 2 } ? (int)emb.Shape[1] : throw new MicroLmException("cannot tell the vocabulary size");
        }
        int ropeDims = (int)(file.GetInt($"{arch}.rope.dimension_count") ?? headDim);
        if (ropeDims <= 0 || ropeDims > headDim || ropeDims % 2 != 0)
            throw new MicroLmException($"rope.dimension_count = {ropeDims} must be even and at most the head size {headDim}");
        float eps = file.GetFloat($"{arch}.attention.layer_norm_rms_epsilon")
            ?? file.GetFloat($"{arch}.attention.layer_norm_epsilon") ?? 1e-5f;
        int layers = Req("block_count");
        int contextLength = Req("context_length");
        return new ModelConfig
        {
            Architecture = arch,
            Dim = dim,
            HiddenDim = Req("feed_forward_length"),
            Layers = layers,
            Heads = heads,
            KvHeads = kvHeads,
            HeadDim = headDim,
            ContextLength = contextLength,
            VocabSize = vocab,
            RopeDims = ropeDims,
            RopeFreqBase = file.GetFloat($"{arch}.rope.freq_base") ?? 10000f,
            NormEpsilon = eps,
            AttentionWindows = arch == "gptneo" ? SlidingWindows(file, arch, layers) : [],
            RecurrentStateBytes = arch == "falcon-h1" ? layers * FalconH1.ReadShape(file, arch).StateBytes : 0,
        };
    }

    /// <summary>"{arch}.attention.sliding_window" (W) and "{arch}.attention.sliding_window_pattern" (one bool
    /// per layer, true = local): the window of each layer, 0 for global ones.</summary>
    private static int[] SlidingWindows(GgufFile file, string arch, int layers)
    {
        string windowKey = $"{arch}.attention.sliding_window", patternKey = $"{arch}.attention.sliding_window_pattern";
        long window = file.GetInt(windowKey) ?? throw new MicroLmException($"model is missing metadata key '{windowKey}'");
        if (window <= 0 || window > 1 << 24) throw new MicroLmException($"metadata '{windowKey}' = {window} is out of range");
        if (!file.TryGet(patternKey, out var pattern)) throw new MicroLmException($"model is missing metadata key '{patternKey}'");
        if (pattern.Type != GgufValueType.Array || pattern.ElementType != GgufValueType.Bool || pattern.Count != layers)
            throw new MicroLmException($"metadata '{patternKey}' must be an array of {layers} booleans (one per layer)");
        return pattern.Elements().Select(e => e.AsBool() ? (int)window : 0).ToArray();
    }

    /// <summary>Bytes of the KV caches for <paramref name="contextLength"/> positions at <paramref name="bytesPerValue"/>
    /// (a sliding-window layer holds its ring, see <see cref="KvCache"/>; <paramref name="maxBatch"/> as the session's).</summary>
    public long KvCacheBytes(int contextLength, int bytesPerValue, int maxBatch = 32)
    {
        long total = 0;
        for (int l = 0; l < Layers; l++)
            total += 2L * KvCache.Rows(contextLength, AttentionWindow(l), maxBatch) * KvDim * bytesPerValue;
        return total;
    }

    /// <summary>Bytes of activations and logits a session keeps besides the cache (one token at a time).</summary>
    public long ScratchBytes(int contextLength) =>
        4L * (4L * Dim + 2L * KvDim + 3L * HiddenDim + (long)Heads * contextLength + VocabSize);
}
