using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using MicroLm.Gguf;
using MicroLm.Tensors.Quants;

namespace MicroLm.Synthetic;

/// <summary>A Hugging Face checkpoint in the layout transformers writes (config.json, model.safetensors or
/// shards with model.safetensors.index.json, tokenizer.json, tokenizer_config.json), with seeded random
/// weights. <see cref="Weights"/> holds every tensor's values as stored (already rounded to the dtype),
/// in PyTorch layout, for float64 references.</summary>
internal sealed class SyntheticHfCheckpoint
{
    public required string Directory { get; init; }
    public required Dictionary<string, (long[] Shape, float[] Values)> Weights { get; init; }
}

/// <summary>The shape of a synthetic checkpoint. Family: "gptneo", "llama", "gptneox" or "falconh1".</summary>
internal sealed record SyntheticHfOptions
{
    public required string Family { get; init; }
    public int Dim { get; init; } = 64;
    public int Hidden { get; init; } = 256;
    public int Layers { get; init; } = 4;
    public int Heads { get; init; } = 4;
    public int KvHeads { get; init; } = 4;
    public int ContextLength { get; init; } = 128;
    /// <summary>GPT-Neo's window and per-layer pattern ("global"/"local", repeated to fill the layers).</summary>
    public int Window { get; init; } = 8;
    public string[] AttentionPattern { get; init; } = ["global", "local"];
    public bool Tied { get; init; } = true;
    public float RotaryPct { get; init; } = 0.25f;
    public bool ParallelResidual { get; init; } = true;
    /// <summary>"F32", "F16" or "BF16".</summary>
    public string DType { get; init; } = "F32";
    public ulong Seed { get; init; } = 1;
    public float WeightScale { get; init; } = 1f;
    /// <summary>Standard deviation of embedding values (token and position tables).</summary>
    public float EmbeddingScale { get; init; } = 0.5f;
    /// <summary>Pythia's non-weight buffers (attention masks, rotary tables) in the checkpoint.</summary>
    public bool ExtraBuffers { get; init; }
    /// <summary>Split the tensors into this many shards with an index.</summary>
    public int Shards { get; init; } = 1;
    /// <summary>The GGUF whose tokenizer becomes tokenizer.json (a gpt2 or llama vocabulary); its token count is the vocabulary.</summary>
    public required string TokenizerGguf { get; init; }
    /// <summary>Tensors left out (error tests).</summary>
    public IReadOnlySet<string>? Omit { get; init; }
    /// <summary>Write "intermediate_size": null (GPT-Neo's real configs do; the model then uses 4 × hidden_size,
    /// which <see cref="Hidden"/> must equal).</summary>
    public bool IntermediateSizeNull { get; init; }

    // Falcon-H1: attention head size (0: Dim / Heads), the Mamba2 mixer's sizes and the µP multipliers. The
    // defaults are distinct, not 1, and keep activations O(1), so a multiplier folded into the wrong
    // tensor or the wrong in_proj block moves the logits.
    public int HeadDim { get; init; }
    public int SsmInner { get; init; } = 128;
    public int SsmHeadDim { get; init; } = 16;
    public int SsmGroups { get; init; } = 2;
    public int SsmState { get; init; } = 16;
    public int ConvKernel { get; init; } = 4;
    public bool SsmNorm { get; init; } = true;
    public float RopeTheta { get; init; } = 1e11f;
    public double EmbeddingMultiplier { get; init; } = 5.656854249492381;
    public double LmHeadMultiplier { get; init; } = 1.7;
    public double AttentionInMultiplier { get; init; } = 1.3;
    public double AttentionOutMultiplier { get; init; } = 0.9375;
    public double KeyMultiplier { get; init; } = 0.390625;
    public double SsmInMultiplier { get; init; } = 1.25;
    public double SsmOutMultiplier { get; init; } = 0.8;
    public double[] MlpMultipliers { get; init; } = [0.8838834764831844, 1.6];
    /// <summary>z, x, B, C, dt blocks of in_proj's output.</summary>
    public double[] SsmMultipliers { get; init; } = [0.35355339059327373, 1.5, 0.7, 2.0, 0.6];
}

internal static class SyntheticHf
{
    /// <summary>roneneldan/TinyStories-1M's config.json: GPTNeoForCausalLM, hidden_size 64, num_layers 8, num_heads 16,
    /// attention_types [[["global", "local"], 4]], window_size 256, max_position_embeddings 2048, vocab_size 50257,
    /// intermediate_size null (4 × 64), gelu_new, layer_norm_epsilon 1e-5, tied classifier. Weights are ours.</summary>
    public static SyntheticHfOptions TinyStories1M(string gpt2Tokenizer, ulong seed = 1) => TinyStories(gpt2Tokenizer, 64, 8, seed);

    /// <summary>roneneldan/TinyStories-33M's config.json: as <see cref="TinyStories1M"/> with hidden_size 768 and
    /// num_layers 4 (attention_types [[["global", "local"], 2]]).</summary>
    public static SyntheticHfOptions TinyStories33M(string gpt2Tokenizer, ulong seed = 33) => TinyStories(gpt2Tokenizer, 768, 4, seed);

    private static SyntheticHfOptions TinyStories(string tokenizer, int dim, int layers, ulong seed) => new()
    {
        Family = "gptneo", TokenizerGguf = tokenizer, Dim = dim, Hidden = 4 * dim, IntermediateSizeNull = true, Layers = layers,
        Heads = 16, KvHeads = 16, ContextLength = 2048, Window = 256, AttentionPattern = ["global", "local"], Seed = seed,
    };

    public static SyntheticHfCheckpoint Write(string dir, SyntheticHfOptions o)
    {
        System.IO.Directory.CreateDirectory(dir);
        using var vocabFile = GgufFile.Open(o.TokenizerGguf);
        int vocab = (int)vocabFile.Get("tokenizer.ggml.tokens").Count;
        var tensors = Tensors(o, vocab);
        var weights = new Dictionary<string, (long[], float[])>();
        var rng = new List<(string Name, long[] Shape, float[] Values)>();
        foreach (var (name, shape, kind) in tensors)
        {
            if (o.Omit?.Contains(name) == true) continue;
            long n = shape.Aggregate(1L, (a, d) => a * d);
            var r = new SyntheticRandom(SyntheticRandom.Derive(o.Seed, name));
            var v = new float[n];
            float scale = o.WeightScale / MathF.Sqrt(shape[^1]);
            for (long i = 0; i < n; i++)
                v[i] = kind switch
                {
                    'n' => 1f + 0.1f * r.NextNormal(),  // norm weight
                    'b' => 0.1f * r.NextNormal(),       // bias
                    'e' => o.EmbeddingScale * r.NextNormal(), // embedding
                    'a' => -2.3f + 4.4f * r.NextFloat(), // A_log: A = −exp(·) ∈ [−8, −0.1], fast to slow decays
                    't' => -1.5f + 0.5f * r.NextNormal(), // dt_bias: Δ = softplus(dt + bias) mostly 0.05–1.5
                    'd' => 1f + 0.1f * r.NextNormal(),  // D skip
                    _ => scale * r.NextNormal(),
                };
            Round(v, o.DType);
            weights[name] = (shape, v);
            rng.Add((name, shape, v));
        }
        var buffers = new List<(string, string, long[], byte[])>();
        if (o.ExtraBuffers)
            for (int l = 0; l < o.Layers; l++)
            {
                string p = o.Family == "gptneo" ? $"transformer.h.{l}.attn.attention." : $"gpt_neox.layers.{l}.attention.";
                int ctx = System.Math.Min(o.ContextLength, 16);
                buffers.Add((p + "bias", "BOOL", [1, 1, ctx, ctx], new byte[ctx * ctx]));
                buffers.Add((p + "masked_bias", "F32", [], BitConverter.GetBytes(-1e9f)));
                if (o.Family == "gptneox") buffers.Add((p + "rotary_emb.inv_freq", "F32", [4], new byte[16]));
            }
        WriteShards(dir, rng, buffers, o);
        File.WriteAllText(Path.Combine(dir, "config.json"), Config(o, vocab));
        WriteTokenizer(dir, vocabFile);
        return new SyntheticHfCheckpoint { Directory = dir, Weights = weights };
    }

    private static void Round(float[] v, string dtype)
    {
        for (int i = 0; i < v.Length; i++)
            v[i] = dtype switch
            {
                "F16" => (float)(Half)v[i],
                "BF16" => BitConverter.Int32BitsToSingle(Quantizer.ToBFloat16Bits(v[i]) << 16),
                _ => v[i],
            };
    }

    /// <summary>(name, PyTorch shape, kind: n norm, b bias, e embedding, w matrix).</summary>
    private static List<(string, long[], char)> Tensors(SyntheticHfOptions o, int vocab)
    {
        int d = o.Dim, h = o.Hidden, hd = d / o.Heads, kv = o.KvHeads * hd;
        var t = new List<(string, long[], char)>();
        switch (o.Family)
        {
            case "gptneo":
                t.Add(("transformer.wte.weight", [vocab, d], 'e'));
                t.Add(("transformer.wpe.weight", [o.ContextLength, d], 'e'));
                for (int l = 0; l < o.Layers; l++)
                {
                    string p = $"transformer.h.{l}.";
                    t.Add((p + "ln_1.weight", [d], 'n')); t.Add((p + "ln_1.bias", [d], 'b'));
                    foreach (var x in new[] { "k_proj", "v_proj", "q_proj" }) t.Add((p + $"attn.attention.{x}.weight", [d, d], 'w'));
                    t.Add((p + "attn.attention.out_proj.weight", [d, d], 'w')); t.Add((p + "attn.attention.out_proj.bias", [d], 'b'));
                    t.Add((p + "ln_2.weight", [d], 'n')); t.Add((p + "ln_2.bias", [d], 'b'));
                    t.Add((p + "mlp.c_fc.weight", [h, d], 'w')); t.Add((p + "mlp.c_fc.bias", [h], 'b'));
                    t.Add((p + "mlp.c_proj.weight", [d, h], 'w')); t.Add((p + "mlp.c_proj.bias", [d], 'b'));
                }
                t.Add(("transformer.ln_f.weight", [d], 'n')); t.Add(("transformer.ln_f.bias", [d], 'b'));
                if (!o.Tied) t.Add(("lm_head.weight", [vocab, d], 'w'));
                break;
            case "llama":
                t.Add(("model.embed_tokens.weight", [vocab, d], 'e'));
                for (int l = 0; l < o.Layers; l++)
                {
                    string p = $"model.layers.{l}.";
                    t.Add((p + "input_layernorm.weight", [d], 'n'));
                    t.Add((p + "self_attn.q_proj.weight", [d, d], 'w')); t.Add((p + "self_attn.k_proj.weight", [kv, d], 'w'));
                    t.Add((p + "self_attn.v_proj.weight", [kv, d], 'w')); t.Add((p + "self_attn.o_proj.weight", [d, d], 'w'));
                    t.Add((p + "post_attention_layernorm.weight", [d], 'n'));
                    t.Add((p + "mlp.gate_proj.weight", [h, d], 'w')); t.Add((p + "mlp.up_proj.weight", [h, d], 'w'));
                    t.Add((p + "mlp.down_proj.weight", [d, h], 'w'));
                }
                t.Add(("model.norm.weight", [d], 'n'));
                if (!o.Tied) t.Add(("lm_head.weight", [vocab, d], 'w'));
                break;
            case "gptneox":
                t.Add(("gpt_neox.embed_in.weight", [vocab, d], 'e'));
                for (int l = 0; l < o.Layers; l++)
                {
                    string p = $"gpt_neox.layers.{l}.";
                    t.Add((p + "input_layernorm.weight", [d], 'n')); t.Add((p + "input_layernorm.bias", [d], 'b'));
                    t.Add((p + "post_attention_layernorm.weight", [d], 'n')); t.Add((p + "post_attention_layernorm.bias", [d], 'b'));
                    t.Add((p + "attention.query_key_value.weight", [3 * d, d], 'w')); t.Add((p + "attention.query_key_value.bias", [3 * d], 'b'));
                    t.Add((p + "attention.dense.weight", [d, d], 'w')); t.Add((p + "attention.dense.bias", [d], 'b'));
                    t.Add((p + "mlp.dense_h_to_4h.weight", [h, d], 'w')); t.Add((p + "mlp.dense_h_to_4h.bias", [h], 'b'));
                    t.Add((p + "mlp.dense_4h_to_h.weight", [d, h], 'w')); t.Add((p + "mlp.dense_4h_to_h.bias", [d], 'b'));
                }
                t.Add(("gpt_neox.final_layer_norm.weight", [d], 'n')); t.Add(("gpt_neox.final_layer_norm.bias", [d], 'b'));
                t.Add(("embed_out.weight", [vocab, d], 'w'));
                break;
            case "falconh1":
            {
                int hdA = o.HeadDim > 0 ? o.HeadDim : d / o.Heads, q = o.Heads * hdA, kvA = o.KvHeads * hdA;
                int ssmHeads = o.SsmInner / o.SsmHeadDim, conv = o.SsmInner + 2 * o.SsmGroups * o.SsmState;
                int proj = o.SsmInner + conv + ssmHeads;
                t.Add(("model.embed_tokens.weight", [vocab, d], 'e'));
                for (int l = 0; l < o.Layers; l++)
                {
                    string p = $"model.layers.{l}.", m = p + "mamba.";
                    t.Add((p + "input_layernorm.weight", [d], 'n'));
                    t.Add((p + "self_attn.q_proj.weight", [q, d], 'w')); t.Add((p + "self_attn.k_proj.weight", [kvA, d], 'w'));
                    t.Add((p + "self_attn.v_proj.weight", [kvA, d], 'w')); t.Add((p + "self_attn.o_proj.weight", [d, q], 'w'));
                    t.Add((m + "in_proj.weight", [proj, d], 'w'));
                    t.Add((m + "conv1d.weight", [conv, 1, o.ConvKernel], 'w')); t.Add((m + "conv1d.bias", [conv], 'b'));
                    t.Add((m + "dt_bias", [ssmHeads], 't')); t.Add((m + "A_log", [ssmHeads], 'a')); t.Add((m + "D", [ssmHeads], 'd'));
                    if (o.SsmNorm) t.Add((m + "norm.weight", [o.SsmInner], 'n'));
                    t.Add((m + "out_proj.weight", [d, o.SsmInner], 'w'));
                    t.Add((p + "pre_ff_layernorm.weight", [d], 'n'));
                    t.Add((p + "feed_forward.gate_proj.weight", [h, d], 'w')); t.Add((p + "feed_forward.up_proj.weight", [h, d], 'w'));
                    t.Add((p + "feed_forward.down_proj.weight", [d, h], 'w'));
                }
                t.Add(("model.final_layernorm.weight", [d], 'n'));
                if (!o.Tied) t.Add(("lm_head.weight", [vocab, d], 'w'));
                break;
            }
            default: throw new ArgumentException($"unknown family {o.Family}");
        }
        return t;
    }

    private static string Config(SyntheticHfOptions o, int vocab)
    {
        var ms = new MemoryStream();
        using (var j = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            j.WriteStartObject();
            switch (o.Family)
            {
                case "gptneo":
                    j.WriteStartArray("architectures"); j.WriteStringValue("GPTNeoForCausalLM"); j.WriteEndArray();
                    j.WriteString("model_type", "gpt_neo");
                    j.WriteString("activation_function", "gelu_new");
                    j.WriteStartArray("attention_types");
                    j.WriteStartArray(); j.WriteStartArray(); foreach (var a in o.AttentionPattern) j.WriteStringValue(a); j.WriteEndArray();
                    j.WriteNumberValue(o.Layers / o.AttentionPattern.Length); j.WriteEndArray();
                    j.WriteEndArray();
                    j.WriteStartArray("attention_layers");
                    for (int l = 0; l < o.Layers; l++) j.WriteStringValue(o.AttentionPattern[l % o.AttentionPattern.Length]);
                    j.WriteEndArray();
                    j.WriteNumber("hidden_size", o.Dim); j.WriteNumber("num_layers", o.Layers); j.WriteNumber("num_heads", o.Heads);
                    if (o.IntermediateSizeNull) j.WriteNull("intermediate_size"); else j.WriteNumber("intermediate_size", o.Hidden);
                    j.WriteNumber("max_position_embeddings", o.ContextLength);
                    j.WriteNumber("window_size", o.Window); j.WriteNumber("layer_norm_epsilon", 1e-5);
                    j.WriteNumber("bos_token_id", 50256); j.WriteNumber("eos_token_id", 50256);
                    if (!o.Tied) j.WriteBoolean("tie_word_embeddings", false);
                    break;
                case "llama":
                    j.WriteStartArray("architectures"); j.WriteStringValue("LlamaForCausalLM"); j.WriteEndArray();
                    j.WriteString("model_type", "llama"); j.WriteString("hidden_act", "silu");
                    j.WriteNumber("hidden_size", o.Dim); j.WriteNumber("num_hidden_layers", o.Layers); j.WriteNumber("num_attention_heads", o.Heads);
                    j.WriteNumber("num_key_value_heads", o.KvHeads); j.WriteNumber("intermediate_size", o.Hidden);
                    j.WriteNumber("max_position_embeddings", o.ContextLength); j.WriteNumber("rms_norm_eps", 1e-5);
                    j.WriteNumber("rope_theta", 10000.0); j.WriteNull("rope_scaling"); j.WriteBoolean("tie_word_embeddings", o.Tied);
                    break;
                case "gptneox":
                    j.WriteStartArray("architectures"); j.WriteStringValue("GPTNeoXForCausalLM"); j.WriteEndArray();
                    j.WriteString("model_type", "gpt_neox"); j.WriteString("hidden_act", "gelu");
                    j.WriteNumber("hidden_size", o.Dim); j.WriteNumber("num_hidden_layers", o.Layers); j.WriteNumber("num_attention_heads", o.Heads);
                    j.WriteNumber("intermediate_size", o.Hidden); j.WriteNumber("max_position_embeddings", o.ContextLength);
                    j.WriteNumber("rotary_pct", o.RotaryPct); j.WriteNumber("rotary_emb_base", 10000);
                    j.WriteBoolean("use_parallel_residual", o.ParallelResidual); j.WriteNumber("layer_norm_eps", 1e-5);
                    j.WriteBoolean("tie_word_embeddings", false);
                    break;
                case "falconh1":
                    j.WriteStartArray("architectures"); j.WriteStringValue("FalconH1ForCausalLM"); j.WriteEndArray();
                    j.WriteString("model_type", "falcon_h1"); j.WriteString("hidden_act", "silu");
                    j.WriteNumber("hidden_size", o.Dim); j.WriteNumber("num_hidden_layers", o.Layers); j.WriteNumber("num_attention_heads", o.Heads);
                    j.WriteNumber("num_key_value_heads", o.KvHeads); j.WriteNumber("head_dim", o.HeadDim > 0 ? o.HeadDim : o.Dim / o.Heads);
                    j.WriteNumber("intermediate_size", o.Hidden); j.WriteNumber("max_position_embeddings", o.ContextLength);
                    j.WriteNumber("rope_theta", o.RopeTheta); j.WriteNull("rope_scaling"); j.WriteNumber("rms_norm_eps", 1e-5);
                    j.WriteBoolean("tie_word_embeddings", o.Tied);
                    j.WriteNumber("mamba_d_ssm", o.SsmInner); j.WriteNumber("mamba_n_heads", o.SsmInner / o.SsmHeadDim);
                    j.WriteNumber("mamba_d_head", o.SsmHeadDim); j.WriteNumber("mamba_n_groups", o.SsmGroups);
                    j.WriteNumber("mamba_d_state", o.SsmState); j.WriteNumber("mamba_d_conv", o.ConvKernel); j.WriteNumber("mamba_expand", 2);
                    j.WriteNumber("mamba_chunk_size", 128); j.WriteBoolean("mamba_conv_bias", true); j.WriteBoolean("mamba_proj_bias", false);
                    j.WriteBoolean("mamba_rms_norm", o.SsmNorm); j.WriteBoolean("mamba_norm_before_gate", false);
                    j.WriteBoolean("attention_bias", false); j.WriteBoolean("mlp_bias", false); j.WriteBoolean("projectors_bias", false);
                    j.WriteNumber("embedding_multiplier", o.EmbeddingMultiplier); j.WriteNumber("lm_head_multiplier", o.LmHeadMultiplier);
                    j.WriteNumber("attention_in_multiplier", o.AttentionInMultiplier); j.WriteNumber("attention_out_multiplier", o.AttentionOutMultiplier);
                    j.WriteNumber("key_multiplier", o.KeyMultiplier); j.WriteNumber("ssm_in_multiplier", o.SsmInMultiplier);
                    j.WriteNumber("ssm_out_multiplier", o.SsmOutMultiplier);
                    j.WriteStartArray("mlp_multipliers"); foreach (var v in o.MlpMultipliers) j.WriteNumberValue(v); j.WriteEndArray();
                    j.WriteStartArray("ssm_multipliers"); foreach (var v in o.SsmMultipliers) j.WriteNumberValue(v); j.WriteEndArray();
                    break;
            }
            j.WriteNumber("vocab_size", vocab);
            j.WriteString("torch_dtype", o.DType switch { "F16" => "float16", "BF16" => "bfloat16", _ => "float32" });
            j.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    /// <summary>Writes safetensors as the safetensors library does: header JSON padded with spaces to a
    /// multiple of 8, tensors packed in header order, no gaps.</summary>
    public static byte[] Safetensors(IEnumerable<(string Name, string DType, long[] Shape, byte[] Data)> tensors, IDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var ms = new MemoryStream();
        using (var j = new Utf8JsonWriter(ms))
        {
            j.WriteStartObject();
            if (metadata != null)
            {
                j.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata) j.WriteString(k, v);
                j.WriteEndObject();
            }
            long at = 0;
            foreach (var (name, dtype, shape, data) in list)
            {
                j.WriteStartObject(name);
                j.WriteString("dtype", dtype);
                j.WriteStartArray("shape"); foreach (var d in shape) j.WriteNumberValue(d); j.WriteEndArray();
                j.WriteStartArray("data_offsets"); j.WriteNumberValue(at); j.WriteNumberValue(at + data.Length); j.WriteEndArray();
                j.WriteEndObject();
                at += data.Length;
            }
            j.WriteEndObject();
        }
        var header = ms.ToArray().ToList();
        while (header.Count % 8 != 0) header.Add((byte)' ');
        var result = new MemoryStream();
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)header.Count);
        result.Write(len);
        result.Write(header.ToArray());
        foreach (var t in list) result.Write(t.Data);
        return result.ToArray();
    }

    public static byte[] Encode(float[] v, string dtype)
    {
        int size = dtype == "F32" ? 4 : 2;
        var b = new byte[v.Length * size];
        for (int i = 0; i < v.Length; i++)
        {
            if (dtype == "F32") BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(4 * i), v[i]);
            else if (dtype == "F16") BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(2 * i), BitConverter.HalfToUInt16Bits((Half)v[i]));
            else BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(2 * i), Quantizer.ToBFloat16Bits(v[i]));
        }
        return b;
    }

    private static void WriteShards(string dir, List<(string Name, long[] Shape, float[] Values)> weights,
        List<(string, string, long[], byte[])> buffers, SyntheticHfOptions o)
    {
        var all = weights.Select(w => (w.Name, o.DType, w.Shape, Encode(w.Values, o.DType))).Concat(buffers).ToList();
        if (o.Shards <= 1)
        {
            File.WriteAllBytes(Path.Combine(dir, "model.safetensors"), Safetensors(all, new Dictionary<string, string> { ["format"] = "pt" }));
            return;
        }
        var map = new SortedDictionary<string, string>(StringComparer.Ordinal);
        int per = (all.Count + o.Shards - 1) / o.Shards;
        for (int s = 0; s < o.Shards; s++)
        {
            string file = $"model-{s + 1:D5}-of-{o.Shards:D5}.safetensors";
            var part = all.Skip(s * per).Take(per).ToList();
            foreach (var t in part) map[t.Item1] = file;
            File.WriteAllBytes(Path.Combine(dir, file), Safetensors(part, new Dictionary<string, string> { ["format"] = "pt" }));
        }
        var ms = new MemoryStream();
        using (var j = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            j.WriteStartObject();
            j.WriteStartObject("metadata"); j.WriteNumber("total_size", all.Sum(t => (long)t.Item4.Length)); j.WriteEndObject();
            j.WriteStartObject("weight_map");
            foreach (var (k, v) in map) j.WriteString(k, v);
            j.WriteEndObject();
            j.WriteEndObject();
        }
        File.WriteAllBytes(Path.Combine(dir, "model.safetensors.index.json"), ms.ToArray());
    }

    /// <summary>tokenizer.json + tokenizer_config.json + special_tokens_map.json for the vocabulary in a GGUF:
    /// "gpt2" → byte-level BPE (GPT-2's ByteLevel pre-tokenizer); "llama" → SentencePiece-style BPE (▁ normaliser,
    /// byte fallback) with merges derived from the piece scores the way transformers' Llama converter derives them.</summary>
    public static void WriteTokenizer(string dir, GgufFile vocab)
    {
        string model = vocab.GetString("tokenizer.ggml.model")!;
        var tokens = vocab.Get("tokenizer.ggml.tokens").AsStringArray();
        var types = vocab.Get("tokenizer.ggml.token_type").AsSpan<int>().ToArray();
        int? Id(string key) => vocab.GetInt(key) is { } v ? (int)v : null;
        int? bos = Id("tokenizer.ggml.bos_token_id"), eos = Id("tokenizer.ggml.eos_token_id"), unk = Id("tokenizer.ggml.unknown_token_id");
        var ms = new MemoryStream();
        using (var j = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            j.WriteStartObject();
            j.WriteString("version", "1.0");
            j.WriteNull("truncation"); j.WriteNull("padding");
            j.WriteStartArray("added_tokens");
            for (int i = 0; i < tokens.Length; i++)
            {
                if (types[i] != 3 && types[i] != 4 && types[i] != 2) continue;
                j.WriteStartObject();
                j.WriteNumber("id", i); j.WriteString("content", tokens[i]);
                j.WriteBoolean("single_word", false); j.WriteBoolean("lstrip", false); j.WriteBoolean("rstrip", false);
                j.WriteBoolean("normalized", types[i] == 4); j.WriteBoolean("special", types[i] != 4);
                j.WriteEndObject();
            }
            j.WriteEndArray();
            List<string> merges;
            if (model == "gpt2")
            {
                j.WriteNull("normalizer");
                j.WritePropertyName("pre_tokenizer");
                j.WriteRawValue("""{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}""");
                j.WriteNull("post_processor");
                j.WritePropertyName("decoder");
                j.WriteRawValue("""{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}""");
                merges = vocab.Get("tokenizer.ggml.merges").AsStringArray().ToList();
            }
            else
            {
                j.WritePropertyName("normalizer");
                j.WriteRawValue("""{"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}""");
                j.WriteNull("pre_tokenizer");
                j.WriteNull("post_processor");
                j.WriteNull("decoder");
                merges = SpmMerges(tokens, vocab.Get("tokenizer.ggml.scores").AsSpan<float>().ToArray(), types);
            }
            j.WriteStartObject("model");
            j.WriteString("type", "BPE");
            j.WriteNull("dropout");
            if (model == "llama") { j.WriteString("unk_token", unk is { } u ? tokens[u] : "<unk>"); j.WriteBoolean("fuse_unk", true); j.WriteBoolean("byte_fallback", true); }
            else { j.WriteNull("unk_token"); j.WriteBoolean("byte_fallback", false); }
            j.WriteStartObject("vocab");
            var seen = new HashSet<string>(StringComparer.Ordinal);
            for (int i = 0; i < tokens.Length; i++)
                if (seen.Add(tokens[i])) j.WriteNumber(tokens[i], i);
            j.WriteEndObject();
            j.WriteStartArray("merges");
            foreach (var m in merges) j.WriteStringValue(m);
            j.WriteEndArray();
            j.WriteEndObject();
            j.WriteEndObject();
        }
        File.WriteAllBytes(Path.Combine(dir, "tokenizer.json"), ms.ToArray());
        var cfg = new Dictionary<string, object?>
        {
            ["add_bos_token"] = vocab.GetBool("tokenizer.ggml.add_bos_token") ?? false,
            ["bos_token"] = bos is { } b ? tokens[b] : null,
            ["eos_token"] = eos is { } e ? tokens[e] : null,
            ["model_max_length"] = 2048,
        };
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), JsonSerializer.Serialize(cfg));
        File.WriteAllText(Path.Combine(dir, "special_tokens_map.json"), JsonSerializer.Serialize(new Dictionary<string, string?>
        {
            ["bos_token"] = bos is { } b2 ? tokens[b2] : null, ["eos_token"] = eos is { } e2 ? tokens[e2] : null,
        }));
    }

    /// <summary>Merges of a SentencePiece BPE vocabulary as transformers derives them: for each normal piece,
    /// every split into two pieces of the vocabulary, ordered by the piece's score (highest first, stable), then
    /// by the two halves' ids.</summary>
    private static List<string> SpmMerges(string[] tokens, float[] scores, int[] types)
    {
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < tokens.Length; i++) ids.TryAdd(tokens[i], i);
        var merges = new List<(string L, string R, float Score, int Order)>();
        int order = 0;
        for (int i = 0; i < tokens.Length; i++)
        {
            if (types[i] != 1) continue;
            string piece = tokens[i];
            var local = new List<(string, string)>();
            var e = System.Globalization.StringInfo.GetTextElementEnumerator(piece);
            for (int k = 1; k < piece.Length; k++)
            {
                if (char.IsLowSurrogate(piece[k])) continue;
                string l = piece[..k], r = piece[k..];
                if (ids.ContainsKey(l) && ids.ContainsKey(r)) local.Add((l, r));
            }
            foreach (var (l, r) in local.OrderBy(x => ids[x.Item1]).ThenBy(x => ids[x.Item2])) merges.Add((l, r, scores[i], order++));
        }
        return merges.OrderByDescending(m => m.Score).ThenBy(m => m.Order).Select(m => m.L + " " + m.R).ToList();
    }
}
