using System.Text.Json;

namespace MicroLm.Conversion;

/// <summary>GPTNeoForCausalLM → "gptneo" (our keys and names, docs/gguf-gptneo.md): attention_types
/// (e.g. [[["global", "local"], 4]]) expanded to one flag per layer; q, k, v, out_proj and the MLP's
/// c_fc / c_proj as attn_q/k/v/output and ffn_up/down; wpe as position_embd. The checkpoint's attention
/// masks (attn.attention.bias, masked_bias) are buffers, not weights.</summary>
internal sealed class HfGptNeo : HfFamily
{
    public override string HfArchitecture => "GPTNeoForCausalLM";
    public override string Architecture => "gptneo";

    public override bool IsBuffer(string name) =>
        name.EndsWith(".attn.attention.bias", StringComparison.Ordinal) || name.EndsWith(".attn.attention.masked_bias", StringComparison.Ordinal);

    public override void Convert(HfCheckpoint ck, HfOutput o)
    {
        int dim = ck.Int("hidden_size"), layers = ck.Int("num_layers"), heads = ck.Int("num_heads");
        int vocab = ck.Int("vocab_size"), ctx = ck.Int("max_position_embeddings"), window = ck.Int("window_size", 256);
        int hidden = ck.Int("intermediate_size", 4 * dim);
        if (dim % heads != 0) throw new MicroLmException($"config.json: hidden_size {dim} is not a multiple of num_heads {heads}");
        string act = ck.String("activation_function") ?? "gelu_new";
        if (act != "gelu_new") throw new MicroLmException($"config.json: activation_function '{act}' is not supported (GPT-Neo's gelu_new is)");
        var local = AttentionLayers(ck, layers);

        o.Sizes(ctx, dim, layers, hidden);
        o.Key("attention.head_count", (uint)heads);
        o.Key("attention.layer_norm_epsilon", ck.Float("layer_norm_epsilon", 1e-5f));
        o.Key("attention.sliding_window", (uint)window);
        o.Writer.Add("gptneo.attention.sliding_window_pattern", Gguf.GgufValueType.Array, new Gguf.GgufArray(Gguf.GgufValueType.Bool, local));
        HfTokenizer.Write(ck.Directory, o.Writer, vocab);

        o.Matrix("token_embd.weight", ck.Tensor("transformer.wte.weight", vocab, dim).ToFloats(), vocab, dim);
        o.Matrix("position_embd.weight", ck.Tensor("transformer.wpe.weight", ctx, dim).ToFloats(), ctx, dim);
        for (int i = 0; i < layers; i++)
        {
            string h = $"transformer.h.{i}.", b = $"blk.{i}.";
            o.Vector(b + "attn_norm.weight", ck.Tensor(h + "ln_1.weight", dim).ToFloats());
            o.Vector(b + "attn_norm.bias", ck.Tensor(h + "ln_1.bias", dim).ToFloats());
            o.Matrix(b + "attn_q.weight", ck.Tensor(h + "attn.attention.q_proj.weight", dim, dim).ToFloats(), dim, dim);
            o.Matrix(b + "attn_k.weight", ck.Tensor(h + "attn.attention.k_proj.weight", dim, dim).ToFloats(), dim, dim);
            o.Matrix(b + "attn_v.weight", ck.Tensor(h + "attn.attention.v_proj.weight", dim, dim).ToFloats(), dim, dim);
            o.Matrix(b + "attn_output.weight", ck.Tensor(h + "attn.attention.out_proj.weight", dim, dim).ToFloats(), dim, dim);
            o.Vector(b + "attn_output.bias", ck.Tensor(h + "attn.attention.out_proj.bias", dim).ToFloats());
            o.Vector(b + "ffn_norm.weight", ck.Tensor(h + "ln_2.weight", dim).ToFloats());
            o.Vector(b + "ffn_norm.bias", ck.Tensor(h + "ln_2.bias", dim).ToFloats());
            o.Matrix(b + "ffn_up.weight", ck.Tensor(h + "mlp.c_fc.weight", hidden, dim).ToFloats(), hidden, dim);
            o.Vector(b + "ffn_up.bias", ck.Tensor(h + "mlp.c_fc.bias", hidden).ToFloats());
            o.Matrix(b + "ffn_down.weight", ck.Tensor(h + "mlp.c_proj.weight", dim, hidden).ToFloats(), dim, hidden);
            o.Vector(b + "ffn_down.bias", ck.Tensor(h + "mlp.c_proj.bias", dim).ToFloats());
        }
        o.Vector("output_norm.weight", ck.Tensor("transformer.ln_f.weight", dim).ToFloats());
        o.Vector("output_norm.bias", ck.Tensor("transformer.ln_f.bias", dim).ToFloats());
        // GPT-Neo ties lm_head to wte unless the config says otherwise.
        if (ck.Bool("tie_word_embeddings", true)) { if (ck.Has("lm_head.weight")) ck.Ignore("lm_head.weight"); }
        else o.Matrix("output.weight", ck.Tensor("lm_head.weight", vocab, dim).ToFloats(), vocab, dim);
    }

    /// <summary>attention_types [[["global", "local"], 4], ...] → per layer true for local, checked against num_layers.</summary>
    private static bool[] AttentionLayers(HfCheckpoint ck, int layers)
    {
        var list = new List<bool>();
        if (!ck.Config.TryGetProperty("attention_types", out var types) || types.ValueKind != JsonValueKind.Array)
            throw new MicroLmException("config.json has no attention_types");
        foreach (var group in types.EnumerateArray())
        {
            if (group.ValueKind != JsonValueKind.Array || group.GetArrayLength() != 2 || group[0].ValueKind != JsonValueKind.Array
                || !group[1].TryGetInt32(out int repeat) || repeat < 0 || repeat > layers)
                throw new MicroLmException("config.json: attention_types must be [[[types...], repeat], ...]");
            for (int r = 0; r < repeat; r++)
                foreach (var kind in group[0].EnumerateArray())
                    list.Add(kind.GetString() switch
                    {
                        "global" => false,
                        "local" => true,
                        var k => throw new MicroLmException($"config.json: attention type '{k}' (global or local)"),
                    });
            if (list.Count > layers) break;
        }
        if (list.Count != layers) throw new MicroLmException($"config.json: attention_types give {list.Count} layers, num_layers is {layers}");
        return list.ToArray();
    }
}
