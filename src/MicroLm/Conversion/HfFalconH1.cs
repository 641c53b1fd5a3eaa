using System.Text.Json;

namespace MicroLm.Conversion;

/// <summary>FalconH1ForCausalLM → "falcon-h1" as llama.cpp's converter writes it (docs/falcon-h1.md). Falcon-H1
/// scales activations by constant multipliers from config.json (µP); each is a factor on one linear map, so it is
/// folded into that map's weights and the runtime's graph is the plain one:
/// <list type="bullet">
/// <item>embedding_multiplier → token_embd; lm_head_multiplier → output (also when tied: the classifier is then
/// written as its own tensor, since the scaled embedding is not the scaled classifier);</item>
/// <item>attention_in_multiplier → q, k, v; key_multiplier → k; attention_out_multiplier → attn_output;</item>
/// <item>ssm_in_multiplier and the five ssm_multipliers (the µP vector over in_proj's z | x | B | C | dt rows) →
/// ssm_in; ssm_out_multiplier → ssm_out; mlp_multipliers [gate, down] → ffn_gate, ffn_down.</item>
/// </list>
/// A = −exp(A_log) is written as ssm_a, the convolution weight [channels, 1, kernel] as {kernel, channels} in F32,
/// the gated norm as {inner / groups, groups}. Rotary embeddings are on halves in both (no row permutation).</summary>
internal sealed class HfFalconH1 : HfFamily
{
    public override string HfArchitecture => "FalconH1ForCausalLM";
    public override string Architecture => "falcon-h1";

    /// <summary>transformers registers the µP vector as a non-persistent buffer; a checkpoint that carries it
    /// anyway holds what ssm_multipliers already say.</summary>
    public override bool IsBuffer(string name) => name.EndsWith(".mamba.mup_vector", StringComparison.Ordinal)
        || name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal);

    public override void Convert(HfCheckpoint ck, HfOutput o)
    {
        int dim = ck.Int("hidden_size"), layers = ck.Int("num_hidden_layers"), heads = ck.Int("num_attention_heads");
        int kvHeads = ck.Int("num_key_value_heads", heads), hidden = ck.Int("intermediate_size"), vocab = ck.Int("vocab_size");
        int ctx = ck.Int("max_position_embeddings", 2048);
        if (heads % kvHeads != 0) throw new MicroLmException($"config.json: num_attention_heads {heads} is not a multiple of num_key_value_heads {kvHeads}");
        int headDim = ck.Int("head_dim", dim % heads == 0 ? dim / heads : 0);
        if (headDim <= 0) throw new MicroLmException($"config.json: hidden_size {dim} is not a multiple of num_attention_heads {heads} and there is no head_dim");
        if (headDim % 2 != 0) throw new MicroLmException($"config.json: head_dim {headDim} must be even (rotary pairs)");
        string act = ck.String("hidden_act") ?? "silu";
        if (act != "silu") throw new MicroLmException($"config.json: hidden_act '{act}' is not supported (Falcon-H1's silu is)");
        if (ck.IsSet("rope_scaling"))
            throw new MicroLmException("config.json: rope_scaling is not supported");
        foreach (var flag in new[] { "attention_bias", "mlp_bias", "mamba_proj_bias", "projectors_bias" })
            if (ck.Bool(flag, false)) throw new MicroLmException($"config.json: {flag} = true is not supported (llama.cpp's falcon-h1 has no such biases)");

        // The mixer: inner size (mamba_d_ssm, else mamba_expand · hidden), heads of mamba_d_head, groups, state, kernel.
        int inner = ck.Config.TryGetProperty("mamba_d_ssm", out var dssm) && dssm.ValueKind == JsonValueKind.Number
            ? ck.Int("mamba_d_ssm") : (int)(ck.Float("mamba_expand", 2f) * dim);
        int ssmHeadDim = ck.Int("mamba_d_head", 64), groups = ck.Int("mamba_n_groups", 1);
        int state = ck.Int("mamba_d_state", 256), kernel = ck.Int("mamba_d_conv", 4);
        if (inner <= 0 || inner % ssmHeadDim != 0)
            throw new MicroLmException($"config.json: mamba_d_ssm {inner} is not a multiple of mamba_d_head {ssmHeadDim}");
        int ssmHeads = inner / ssmHeadDim; // llama.cpp's ssm.time_step_rank
        if (ck.Config.TryGetProperty("mamba_n_heads", out var nh) && nh.ValueKind == JsonValueKind.Number && ck.Int("mamba_n_heads") != ssmHeads)
            throw new MicroLmException($"config.json: mamba_n_heads {ck.Int("mamba_n_heads")} disagrees with mamba_d_ssm / mamba_d_head = {inner} / {ssmHeadDim}");
        if (ssmHeads % groups != 0)
            throw new MicroLmException($"config.json: the SSM head count {ssmHeads} is not a multiple of mamba_n_groups {groups}");
        bool ssmNorm = ck.Bool("mamba_rms_norm", false);
        // llama.cpp gates before its grouped norm (y·SiLU(z), then RMSNorm); the other order is another model.
        if (ssmNorm && ck.Bool("mamba_norm_before_gate", true))
            throw new MicroLmException("config.json: mamba_norm_before_gate = true is not supported (the norm after the gate is)");
        int convChannels = inner + 2 * groups * state, projection = inner + convChannels + ssmHeads;

        // The multipliers (transformers' defaults: 1).
        double embMul = ck.Float("embedding_multiplier", 1f), lmHeadMul = ck.Float("lm_head_multiplier", 1f);
        double attnIn = ck.Float("attention_in_multiplier", 1f), attnOut = ck.Float("attention_out_multiplier", 1f);
        double keyMul = ck.Float("key_multiplier", 1f), ssmIn = ck.Float("ssm_in_multiplier", 1f), ssmOut = ck.Float("ssm_out_multiplier", 1f);
        var mlp = Floats(ck, "mlp_multipliers", 2);
        var mup = Floats(ck, "ssm_multipliers", 5);

        o.Key("vocab_size", (uint)vocab);
        o.Key("context_length", (uint)ctx);
        o.Key("embedding_length", (uint)dim);
        o.Key("feed_forward_length", (uint)hidden);
        o.Key("block_count", (uint)layers);
        o.Key("attention.head_count", (uint)heads);
        o.Key("attention.head_count_kv", (uint)kvHeads);
        o.Key("attention.key_length", (uint)headDim);
        o.Key("attention.value_length", (uint)headDim);
        o.Key("rope.freq_base", RopeTheta(ck));
        o.Key("attention.layer_norm_rms_epsilon", ck.Float("rms_norm_eps", 1e-5f));
        o.Key("ssm.conv_kernel", (uint)kernel);
        o.Key("ssm.inner_size", (uint)inner);
        o.Key("ssm.state_size", (uint)state);
        o.Key("ssm.time_step_rank", (uint)ssmHeads);
        o.Key("ssm.group_count", (uint)groups);
        HfTokenizer.Write(ck.Directory, o.Writer, vocab);

        int qDim = heads * headDim, kvDim = kvHeads * headDim;
        var embedding = ck.Tensor("model.embed_tokens.weight", vocab, dim).ToFloats();
        o.Matrix("token_embd.weight", Scaled(embedding, embMul), vocab, dim);
        for (int i = 0; i < layers; i++)
        {
            string h = $"model.layers.{i}.", m = h + "mamba.", b = $"blk.{i}.";
            o.Vector(b + "attn_norm.weight", ck.Tensor(h + "input_layernorm.weight", dim).ToFloats());
            o.Matrix(b + "attn_q.weight", Scaled(ck.Tensor(h + "self_attn.q_proj.weight", qDim, dim).ToFloats(), attnIn), qDim, dim);
            o.Matrix(b + "attn_k.weight", Scaled(ck.Tensor(h + "self_attn.k_proj.weight", kvDim, dim).ToFloats(), attnIn * keyMul), kvDim, dim);
            o.Matrix(b + "attn_v.weight", Scaled(ck.Tensor(h + "self_attn.v_proj.weight", kvDim, dim).ToFloats(), attnIn), kvDim, dim);
            o.Matrix(b + "attn_output.weight", Scaled(ck.Tensor(h + "self_attn.o_proj.weight", dim, qDim).ToFloats(), attnOut), dim, qDim);

            // in_proj rows: z (inner) | x (inner) | B (groups·state) | C (groups·state) | dt (heads), each block by its µP factor.
            var inProj = ck.Tensor(m + "in_proj.weight", projection, dim).ToFloats();
            int gs = groups * state;
            int[] blockEnds = [inner, 2 * inner, 2 * inner + gs, 2 * inner + 2 * gs, projection];
            for (int row = 0, block = 0; row < projection; row++)
            {
                while (row >= blockEnds[block]) block++;
                float f = (float)(ssmIn * mup[block]);
                var span = inProj.AsSpan(row * dim, dim);
                for (int c = 0; c < span.Length; c++) span[c] *= f;
            }
            o.Matrix(b + "ssm_in.weight", inProj, projection, dim);
            o.Floats(b + "ssm_conv1d.weight", ck.Tensor(m + "conv1d.weight", convChannels, 1, kernel).ToFloats(), [kernel, convChannels]);
            // Without mamba_conv_bias the layer adds nothing; llama.cpp's graph always adds a bias, so it gets zeros.
            o.Vector(b + "ssm_conv1d.bias", ck.Bool("mamba_conv_bias", true) ? ck.Tensor(m + "conv1d.bias", convChannels).ToFloats() : new float[convChannels]);
            o.Vector(b + "ssm_dt.bias", ck.Tensor(m + "dt_bias", ssmHeads).ToFloats());
            var a = ck.Tensor(m + "A_log", ssmHeads).ToFloats();
            for (int k = 0; k < a.Length; k++) a[k] = -Math.DetMath.Exp(a[k]);
            o.Floats(b + "ssm_a", a, [1, ssmHeads]);
            o.Floats(b + "ssm_d", ck.Tensor(m + "D", ssmHeads).ToFloats(), [1, ssmHeads]);
            if (ssmNorm) o.Floats(b + "ssm_norm.weight", ck.Tensor(m + "norm.weight", inner).ToFloats(), [inner / groups, groups]);
            o.Matrix(b + "ssm_out.weight", Scaled(ck.Tensor(m + "out_proj.weight", dim, inner).ToFloats(), ssmOut), dim, inner);

            // llama.cpp's loader asks for the feed-forward norm without ".weight".
            o.Vector(b + "ffn_norm", ck.Tensor(h + "pre_ff_layernorm.weight", dim).ToFloats());
            o.Matrix(b + "ffn_gate.weight", Scaled(ck.Tensor(h + "feed_forward.gate_proj.weight", hidden, dim).ToFloats(), mlp[0]), hidden, dim);
            o.Matrix(b + "ffn_up.weight", ck.Tensor(h + "feed_forward.up_proj.weight", hidden, dim).ToFloats(), hidden, dim);
            o.Matrix(b + "ffn_down.weight", Scaled(ck.Tensor(h + "feed_forward.down_proj.weight", dim, hidden).ToFloats(), mlp[1]), dim, hidden);
        }
        o.Vector("output_norm.weight", ck.Tensor("model.final_layernorm.weight", dim).ToFloats());
        float[] head;
        if (ck.Bool("tie_word_embeddings", false))
        {
            if (ck.Has("lm_head.weight")) ck.Ignore("lm_head.weight");
            head = embedding;
        }
        else head = ck.Tensor("lm_head.weight", vocab, dim).ToFloats();
        // A tied classifier equals the unscaled embedding; it gets its own tensor unless both multipliers are 1.
        if (!ReferenceEquals(head, embedding) || embMul != lmHeadMul)
            o.Matrix("output.weight", Scaled(head, lmHeadMul), vocab, dim);
    }

    /// <summary>The values times <paramref name="f"/>, each rounded once to F32 (in place; f = 1 leaves them).</summary>
    private static float[] Scaled(float[] w, double f)
    {
        if (f == 1) return w;
        var r = new float[w.Length];
        for (int i = 0; i < w.Length; i++) r[i] = (float)(w[i] * f);
        return r;
    }

    /// <summary>rope_theta, or rope_parameters.rope_theta as newer transformers write it (Falcon-H1 trains with 10^11).</summary>
    private static float RopeTheta(HfCheckpoint ck)
    {
        if (ck.Config.TryGetProperty("rope_parameters", out var p) && p.ValueKind == JsonValueKind.Object
            && p.TryGetProperty("rope_theta", out var t) && t.ValueKind == JsonValueKind.Number)
            return t.GetSingle();
        return ck.Float("rope_theta", 1e11f);
    }

    /// <summary>A list of <paramref name="count"/> numbers (null or absent: all 1).</summary>
    private static double[] Floats(HfCheckpoint ck, string key, int count)
    {
        if (!ck.Config.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return Enumerable.Repeat(1.0, count).ToArray();
        if (v.ValueKind != JsonValueKind.Array || v.GetArrayLength() != count || v.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.Number))
            throw new MicroLmException($"config.json: {key} must be a list of {count} numbers");
        return v.EnumerateArray().Select(e => e.GetDouble()).ToArray();
    }
}
