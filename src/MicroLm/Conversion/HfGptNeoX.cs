namespace MicroLm.Conversion;

/// <summary>GPTNeoXForCausalLM (Pythia) → "gptneox" as llama.cpp's converter writes it: the fused
/// query_key_value rows, per head [q | k | v] in Hugging Face, re-laid as all q rows, then all k, then all v
/// (bias likewise); rope.dimension_count = rotary_pct · head size; the masks and rotary tables Pythia
/// checkpoints carry (attention.bias, attention.masked_bias, rotary_emb.inv_freq) are skipped.</summary>
internal sealed class HfGptNeoX : HfFamily
{
    public override string HfArchitecture => "GPTNeoXForCausalLM";
    public override string Architecture => "gptneox";

    public override bool IsBuffer(string name) =>
        name.EndsWith(".attention.bias", StringComparison.Ordinal) || name.EndsWith(".attention.masked_bias", StringComparison.Ordinal)
        || name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal);

    public override void Convert(HfCheckpoint ck, HfOutput o)
    {
        int dim = ck.Int("hidden_size"), layers = ck.Int("num_hidden_layers"), heads = ck.Int("num_attention_heads");
        int hidden = ck.Int("intermediate_size"), vocab = ck.Int("vocab_size"), ctx = ck.Int("max_position_embeddings");
        if (dim % heads != 0) throw new MicroLmException($"config.json: hidden_size {dim} is not a multiple of num_attention_heads {heads}");
        int headDim = dim / heads;
        int ropeDims = (int)(ck.Float("rotary_pct", 1f) * headDim);
        if (ropeDims <= 0 || ropeDims % 2 != 0) throw new MicroLmException($"config.json: rotary_pct gives {ropeDims} rotary dimensions per head (must be even and positive)");
        string act = ck.String("hidden_act") ?? "gelu";
        if (act is not ("gelu" or "gelu_new" or "gelu_fast" or "gelu_pytorch_tanh"))
            throw new MicroLmException($"config.json: hidden_act '{act}' is not supported");

        o.Sizes(ctx, dim, layers, hidden);
        o.Key("rope.dimension_count", (uint)ropeDims);
        o.Key("attention.head_count", (uint)heads);
        o.Key("use_parallel_residual", ck.Bool("use_parallel_residual", true));
        o.Key("attention.layer_norm_epsilon", ck.Float("layer_norm_eps", 1e-5f));
        float theta = ck.Float("rotary_emb_base", 10000f);
        if (theta != 10000f) o.Key("rope.freq_base", theta);
        HfTokenizer.Write(ck.Directory, o.Writer, vocab);

        o.Matrix("token_embd.weight", ck.Tensor("gpt_neox.embed_in.weight", vocab, dim).ToFloats(), vocab, dim);
        for (int i = 0; i < layers; i++)
        {
            string h = $"gpt_neox.layers.{i}.", b = $"blk.{i}.";
            o.Vector(b + "attn_norm.weight", ck.Tensor(h + "input_layernorm.weight", dim).ToFloats());
            o.Vector(b + "attn_norm.bias", ck.Tensor(h + "input_layernorm.bias", dim).ToFloats());
            o.Matrix(b + "attn_qkv.weight", Unfuse(ck.Tensor(h + "attention.query_key_value.weight", 3 * dim, dim).ToFloats(), heads, headDim, dim), 3 * dim, dim);
            o.Vector(b + "attn_qkv.bias", Unfuse(ck.Tensor(h + "attention.query_key_value.bias", 3 * dim).ToFloats(), heads, headDim, 1));
            o.Matrix(b + "attn_output.weight", ck.Tensor(h + "attention.dense.weight", dim, dim).ToFloats(), dim, dim);
            o.Vector(b + "attn_output.bias", ck.Tensor(h + "attention.dense.bias", dim).ToFloats());
            o.Vector(b + "ffn_norm.weight", ck.Tensor(h + "post_attention_layernorm.weight", dim).ToFloats());
            o.Vector(b + "ffn_norm.bias", ck.Tensor(h + "post_attention_layernorm.bias", dim).ToFloats());
            o.Matrix(b + "ffn_up.weight", ck.Tensor(h + "mlp.dense_h_to_4h.weight", hidden, dim).ToFloats(), hidden, dim);
            o.Vector(b + "ffn_up.bias", ck.Tensor(h + "mlp.dense_h_to_4h.bias", hidden).ToFloats());
            o.Matrix(b + "ffn_down.weight", ck.Tensor(h + "mlp.dense_4h_to_h.weight", dim, hidden).ToFloats(), dim, hidden);
            o.Vector(b + "ffn_down.bias", ck.Tensor(h + "mlp.dense_4h_to_h.bias", dim).ToFloats());
        }
        o.Vector("output_norm.weight", ck.Tensor("gpt_neox.final_layer_norm.weight", dim).ToFloats());
        o.Vector("output_norm.bias", ck.Tensor("gpt_neox.final_layer_norm.bias", dim).ToFloats());
        if (ck.Bool("tie_word_embeddings", false)) throw new MicroLmException("config.json: a tied GPT-NeoX classifier is not supported (llama.cpp's gptneox needs output.weight)");
        o.Matrix("output.weight", ck.Tensor("embed_out.weight", vocab, dim).ToFloats(), vocab, dim);
    }

    /// <summary>Rows [head][q|k|v][headDim] → [q|k|v][head][headDim] (each row <paramref name="cols"/> values).</summary>
    internal static float[] Unfuse(float[] w, int heads, int headDim, int cols)
    {
        var result = new float[w.Length];
        for (int h = 0; h < heads; h++)
            for (int part = 0; part < 3; part++)
                Array.Copy(w, ((long)(h * 3 + part) * headDim) * cols, result, ((long)(part * heads + h) * headDim) * cols, (long)headDim * cols);
        return result;
    }
}
