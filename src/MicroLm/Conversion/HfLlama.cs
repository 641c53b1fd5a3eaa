namespace MicroLm.Conversion;

/// <summary>LlamaForCausalLM → "llama" with llama.cpp's keys and tensor names. Hugging Face stores q and k
/// with each head's rotary pairs split in halves (x[i], x[i + d/2]); llama.cpp rotates adjacent pairs, so
/// the converter re-orders each head's rows: output row 2i + j of a head is input row j·d/2 + i (as
/// llama.cpp's converter permutes them; k with the KV head count under GQA). Tied or untied classifier.</summary>
internal sealed class HfLlama : HfFamily
{
    public override string HfArchitecture => "LlamaForCausalLM";
    public override string Architecture => "llama";

    public override bool IsBuffer(string name) => name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal);

    public override void Convert(HfCheckpoint ck, HfOutput o)
    {
        int dim = ck.Int("hidden_size"), layers = ck.Int("num_hidden_layers"), heads = ck.Int("num_attention_heads");
        int kvHeads = ck.Int("num_key_value_heads", heads), hidden = ck.Int("intermediate_size"), vocab = ck.Int("vocab_size");
        int ctx = ck.Int("max_position_embeddings", 2048);
        if (dim % heads != 0 || heads % kvHeads != 0) throw new MicroLmException($"config.json: hidden_size {dim}, num_attention_heads {heads} and num_key_value_heads {kvHeads} do not divide");
        int headDim = ck.Int("head_dim", dim / heads);
        if (headDim != dim / heads) throw new MicroLmException($"config.json: head_dim {headDim} other than hidden_size / num_attention_heads is not supported");
        if (ck.IsSet("rope_scaling"))
            throw new MicroLmException("config.json: rope_scaling is not supported");

        o.Key("vocab_size", (uint)vocab);
        o.Sizes(ctx, dim, layers, hidden);
        o.Key("rope.dimension_count", (uint)headDim);
        o.Key("attention.head_count", (uint)heads);
        o.Key("attention.head_count_kv", (uint)kvHeads);
        o.Key("attention.layer_norm_rms_epsilon", ck.Float("rms_norm_eps", 1e-6f));
        o.Key("rope.freq_base", ck.Float("rope_theta", 10000f));
        HfTokenizer.Write(ck.Directory, o.Writer, vocab);

        int kvDim = kvHeads * headDim;
        o.Matrix("token_embd.weight", ck.Tensor("model.embed_tokens.weight", vocab, dim).ToFloats(), vocab, dim);
        for (int i = 0; i < layers; i++)
        {
            string h = $"model.layers.{i}.", b = $"blk.{i}.";
            o.Vector(b + "attn_norm.weight", ck.Tensor(h + "input_layernorm.weight", dim).ToFloats());
            o.Matrix(b + "attn_q.weight", Permute(ck.Tensor(h + "self_attn.q_proj.weight", dim, dim).ToFloats(), heads, headDim, dim), dim, dim);
            o.Matrix(b + "attn_k.weight", Permute(ck.Tensor(h + "self_attn.k_proj.weight", kvDim, dim).ToFloats(), kvHeads, headDim, dim), kvDim, dim);
            o.Matrix(b + "attn_v.weight", ck.Tensor(h + "self_attn.v_proj.weight", kvDim, dim).ToFloats(), kvDim, dim);
            o.Matrix(b + "attn_output.weight", ck.Tensor(h + "self_attn.o_proj.weight", dim, dim).ToFloats(), dim, dim);
            o.Vector(b + "ffn_norm.weight", ck.Tensor(h + "post_attention_layernorm.weight", dim).ToFloats());
            o.Matrix(b + "ffn_gate.weight", ck.Tensor(h + "mlp.gate_proj.weight", hidden, dim).ToFloats(), hidden, dim);
            o.Matrix(b + "ffn_up.weight", ck.Tensor(h + "mlp.up_proj.weight", hidden, dim).ToFloats(), hidden, dim);
            o.Matrix(b + "ffn_down.weight", ck.Tensor(h + "mlp.down_proj.weight", dim, hidden).ToFloats(), dim, hidden);
        }
        o.Vector("output_norm.weight", ck.Tensor("model.norm.weight", dim).ToFloats());
        if (ck.Bool("tie_word_embeddings", false)) { if (ck.Has("lm_head.weight")) ck.Ignore("lm_head.weight"); }
        else o.Matrix("output.weight", ck.Tensor("lm_head.weight", vocab, dim).ToFloats(), vocab, dim);
    }

    /// <summary>Per head of <paramref name="headDim"/> rows: output row 2i + j = input row j·headDim/2 + i.</summary>
    internal static float[] Permute(float[] w, int heads, int headDim, int cols)
    {
        var result = new float[w.Length];
        int half = headDim / 2;
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < half; i++)
                for (int j = 0; j < 2; j++)
                    Array.Copy(w, ((long)h * headDim + j * half + i) * cols, result, ((long)h * headDim + 2 * i + j) * cols, cols);
        return result;
    }
}
