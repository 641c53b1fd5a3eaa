using MicroLm.Synthetic;

namespace MicroLm.Tests.Conversion;

/// <summary>Float64 forward passes of GPT-Neo, LLaMA, GPT-NeoX and Falcon-H1 written from the semantics of Hugging Face
/// transformers' modeling code (PyTorch layouts, HF's own rotary halves and fused-QKV order), over the
/// weights a synthetic checkpoint stored. Every logit of every position.</summary>
internal sealed class HfReference(SyntheticHfCheckpoint ck, SyntheticHfOptions o)
{
    private float[] W(string name) => ck.Weights[name].Values;
    private int Rows(string name) => (int)ck.Weights[name].Shape[0];

    public double[][] Logits(int[] tokens) => o.Family switch
    {
        "gptneo" => GptNeo(tokens),
        "llama" => Llama(tokens),
        "gptneox" => GptNeoX(tokens),
        "falconh1" => FalconH1(tokens),
        _ => throw new ArgumentException(o.Family),
    };

    private static double[] MatVec(float[] w, int rows, double[] x, float[]? bias = null)
    {
        int cols = x.Length;
        var y = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double s = bias?[r] ?? 0;
            for (int c = 0; c < cols; c++) s += (double)w[(long)r * cols + c] * x[c];
            y[r] = s;
        }
        return y;
    }

    private static double[] LayerNorm(double[] x, float[] w, float[] b, double eps)
    {
        double mean = x.Average(), var = x.Select(v => (v - mean) * (v - mean)).Average();
        double inv = 1 / System.Math.Sqrt(var + eps);
        return x.Select((v, i) => (v - mean) * inv * w[i] + b[i]).ToArray();
    }

    private static double[] RmsNorm(double[] x, float[] w, double eps)
    {
        double ms = x.Select(v => v * v).Average();
        double inv = 1 / System.Math.Sqrt(ms + eps);
        return x.Select((v, i) => v * inv * w[i]).ToArray();
    }

    private static double GeluTanh(double u) => 0.5 * u * (1 + System.Math.Tanh(System.Math.Sqrt(2 / System.Math.PI) * (u + 0.044715 * u * u * u)));

    private static void Add(double[] x, double[] y) { for (int i = 0; i < x.Length; i++) x[i] += y[i]; }

    /// <summary>softmax(q·k·scale)·v over positions first..t of one head.</summary>
    private static double[] Attend(double[] q, List<double[]> keys, List<double[]> values, int first, int t, double scale)
    {
        var s = new double[t - first + 1];
        for (int j = first; j <= t; j++) s[j - first] = q.Select((v, i) => v * keys[j][i]).Sum() * scale;
        double max = s.Max(), sum = 0;
        for (int j = 0; j < s.Length; j++) { s[j] = System.Math.Exp(s[j] - max); sum += s[j]; }
        var o = new double[q.Length];
        for (int j = first; j <= t; j++)
            for (int i = 0; i < o.Length; i++) o[i] += s[j - first] / sum * values[j][i];
        return o;
    }

    private static double[] Slice(double[] x, int at, int n) => x.AsSpan(at, n).ToArray();

    private double[][] GptNeo(int[] tokens)
    {
        int d = o.Dim, hd = d / o.Heads, n = tokens.Length;
        var x = tokens.Select((tok, p) => Enumerable.Range(0, d).Select(i => (double)W("transformer.wte.weight")[(long)tok * d + i] + W("transformer.wpe.weight")[(long)p * d + i]).ToArray()).ToArray();
        for (int l = 0; l < o.Layers; l++)
        {
            string pre = $"transformer.h.{l}.";
            bool local = o.AttentionPattern[l % o.AttentionPattern.Length] == "local";
            var keys = new List<double[]>[o.Heads]; var vals = new List<double[]>[o.Heads];
            for (int h = 0; h < o.Heads; h++) { keys[h] = []; vals[h] = []; }
            var attnOut = new double[n][];
            for (int t = 0; t < n; t++)
            {
                var hN = LayerNorm(x[t], W(pre + "ln_1.weight"), W(pre + "ln_1.bias"), 1e-5);
                var q = MatVec(W(pre + "attn.attention.q_proj.weight"), d, hN);
                var k = MatVec(W(pre + "attn.attention.k_proj.weight"), d, hN);
                var v = MatVec(W(pre + "attn.attention.v_proj.weight"), d, hN);
                var merged = new double[d];
                for (int h = 0; h < o.Heads; h++)
                {
                    keys[h].Add(Slice(k, h * hd, hd)); vals[h].Add(Slice(v, h * hd, hd));
                    // GPT-Neo: no 1/√d; a local layer masks keys with t − j ≥ window.
                    int first = local ? System.Math.Max(0, t - o.Window + 1) : 0;
                    Attend(Slice(q, h * hd, hd), keys[h], vals[h], first, t, 1.0).CopyTo(merged, h * hd);
                }
                attnOut[t] = MatVec(W(pre + "attn.attention.out_proj.weight"), d, merged, W(pre + "attn.attention.out_proj.bias"));
            }
            for (int t = 0; t < n; t++)
            {
                Add(x[t], attnOut[t]);
                var h2 = LayerNorm(x[t], W(pre + "ln_2.weight"), W(pre + "ln_2.bias"), 1e-5);
                var u = MatVec(W(pre + "mlp.c_fc.weight"), o.Hidden, h2, W(pre + "mlp.c_fc.bias")).Select(GeluTanh).ToArray();
                Add(x[t], MatVec(W(pre + "mlp.c_proj.weight"), d, u, W(pre + "mlp.c_proj.bias")));
            }
        }
        string head = o.Tied ? "transformer.wte.weight" : "lm_head.weight";
        return x.Select(v => MatVec(W(head), Rows(head), LayerNorm(v, W("transformer.ln_f.weight"), W("transformer.ln_f.bias"), 1e-5))).ToArray();
    }

    /// <summary>HF rotary ("rotate_half"): pairs (i, i + rot/2) of the first rot dims of a head, angle pos·base^(−2i/rot).</summary>
    private static void Rotate(double[] x, int at, int rot, int pos, double theta = 10000)
    {
        int half = rot / 2;
        for (int i = 0; i < half; i++)
        {
            double a = pos * System.Math.Pow(theta, -2.0 * i / rot), c = System.Math.Cos(a), s = System.Math.Sin(a);
            double x0 = x[at + i], x1 = x[at + i + half];
            x[at + i] = x0 * c - x1 * s;
            x[at + i + half] = x1 * c + x0 * s;
        }
    }

    private double[][] Llama(int[] tokens)
    {
        int d = o.Dim, hd = d / o.Heads, kvDim = o.KvHeads * hd, n = tokens.Length, group = o.Heads / o.KvHeads;
        var x = tokens.Select(tok => Enumerable.Range(0, d).Select(i => (double)W("model.embed_tokens.weight")[(long)tok * d + i]).ToArray()).ToArray();
        for (int l = 0; l < o.Layers; l++)
        {
            string pre = $"model.layers.{l}.";
            var keys = new List<double[]>[o.KvHeads]; var vals = new List<double[]>[o.KvHeads];
            for (int h = 0; h < o.KvHeads; h++) { keys[h] = []; vals[h] = []; }
            for (int t = 0; t < n; t++)
            {
                var hN = RmsNorm(x[t], W(pre + "input_layernorm.weight"), 1e-5);
                var q = MatVec(W(pre + "self_attn.q_proj.weight"), d, hN);
                var k = MatVec(W(pre + "self_attn.k_proj.weight"), kvDim, hN);
                var v = MatVec(W(pre + "self_attn.v_proj.weight"), kvDim, hN);
                for (int h = 0; h < o.Heads; h++) Rotate(q, h * hd, hd, t);
                for (int h = 0; h < o.KvHeads; h++) { Rotate(k, h * hd, hd, t); keys[h].Add(Slice(k, h * hd, hd)); vals[h].Add(Slice(v, h * hd, hd)); }
                var merged = new double[d];
                for (int h = 0; h < o.Heads; h++)
                    Attend(Slice(q, h * hd, hd), keys[h / group], vals[h / group], 0, t, 1 / System.Math.Sqrt(hd)).CopyTo(merged, h * hd);
                Add(x[t], MatVec(W(pre + "self_attn.o_proj.weight"), d, merged));
                var h2 = RmsNorm(x[t], W(pre + "post_attention_layernorm.weight"), 1e-5);
                var g = MatVec(W(pre + "mlp.gate_proj.weight"), o.Hidden, h2);
                var u = MatVec(W(pre + "mlp.up_proj.weight"), o.Hidden, h2);
                var act = g.Select((gv, i) => gv / (1 + System.Math.Exp(-gv)) * u[i]).ToArray();
                Add(x[t], MatVec(W(pre + "mlp.down_proj.weight"), d, act));
            }
        }
        string head = o.Tied ? "model.embed_tokens.weight" : "lm_head.weight";
        return x.Select(v => MatVec(W(head), Rows(head), RmsNorm(v, W("model.norm.weight"), 1e-5))).ToArray();
    }

    /// <summary>GPT-NeoX. The MLP's GELU is the tanh form, as llama.cpp's gptneox computes it (Pythia's config
    /// names the exact erf GELU; the runtime follows llama.cpp, and so does this reference).</summary>
    private double[][] GptNeoX(int[] tokens)
    {
        int d = o.Dim, hd = d / o.Heads, n = tokens.Length, rot = (int)(o.RotaryPct * hd);
        var x = tokens.Select(tok => Enumerable.Range(0, d).Select(i => (double)W("gpt_neox.embed_in.weight")[(long)tok * d + i]).ToArray()).ToArray();
        for (int l = 0; l < o.Layers; l++)
        {
            string pre = $"gpt_neox.layers.{l}.";
            var keys = new List<double[]>[o.Heads]; var vals = new List<double[]>[o.Heads];
            for (int h = 0; h < o.Heads; h++) { keys[h] = []; vals[h] = []; }
            for (int t = 0; t < n; t++)
            {
                var hN = LayerNorm(x[t], W(pre + "input_layernorm.weight"), W(pre + "input_layernorm.bias"), 1e-5);
                var qkv = MatVec(W(pre + "attention.query_key_value.weight"), 3 * d, hN, W(pre + "attention.query_key_value.bias"));
                var merged = new double[d];
                for (int h = 0; h < o.Heads; h++)
                {
                    // HF's fused layout: per head [q | k | v].
                    var q = Slice(qkv, h * 3 * hd, hd); var k = Slice(qkv, h * 3 * hd + hd, hd); var v = Slice(qkv, h * 3 * hd + 2 * hd, hd);
                    Rotate(q, 0, rot, t); Rotate(k, 0, rot, t);
                    keys[h].Add(k); vals[h].Add(v);
                    Attend(q, keys[h], vals[h], 0, t, 1 / System.Math.Sqrt(hd)).CopyTo(merged, h * hd);
                }
                var attn = MatVec(W(pre + "attention.dense.weight"), d, merged, W(pre + "attention.dense.bias"));
                double[] Mlp(double[] input)
                {
                    var h2 = LayerNorm(input, W(pre + "post_attention_layernorm.weight"), W(pre + "post_attention_layernorm.bias"), 1e-5);
                    var u = MatVec(W(pre + "mlp.dense_h_to_4h.weight"), o.Hidden, h2, W(pre + "mlp.dense_h_to_4h.bias")).Select(GeluTanh).ToArray();
                    return MatVec(W(pre + "mlp.dense_4h_to_h.weight"), d, u, W(pre + "mlp.dense_4h_to_h.bias"));
                }
                if (o.ParallelResidual) { var m = Mlp(x[t]); Add(x[t], attn); Add(x[t], m); }
                else { Add(x[t], attn); Add(x[t], Mlp(x[t])); }
            }
        }
        return x.Select(v => MatVec(W("embed_out.weight"), Rows("embed_out.weight"), LayerNorm(v, W("gpt_neox.final_layer_norm.weight"), W("gpt_neox.final_layer_norm.bias"), 1e-5))).ToArray();
    }

    private static double Silu(double v) => v / (1 + System.Math.Exp(-v));
    private static double Softplus(double v) => System.Math.Log(1 + System.Math.Exp(v));
    private static double[] Scale(double[] x, double f) => x.Select(v => v * f).ToArray();

    /// <summary>Falcon-H1 as transformers' modeling_falcon_h1 computes it, with its multipliers applied where the
    /// model applies them (not folded): embedding × embedding_multiplier; per layer one RMSNorm feeding the Mamba2
    /// mixer (input × ssm_in_multiplier, in_proj × µP vector, z | xBC | dt, causal depthwise conv + bias, SiLU,
    /// Δ = softplus(dt + dt_bias), the recurrence s ← s·exp(Δ·A) + Δ·B·x with A = −exp(A_log), y = s·C + D·x,
    /// y·SiLU(z), grouped RMSNorm if mamba_rms_norm, out_proj × ssm_out_multiplier) and attention (input ×
    /// attention_in_multiplier, k × key_multiplier, rotate_half rotary with head_dim, 1/√head_dim,
    /// o_proj × attention_out_multiplier); their sum added to the residual; SwiGLU with gate × mlp[0] and down ×
    /// mlp[1]; final norm; lm_head × lm_head_multiplier. The recurrence is the SSD's sequential form.</summary>
    private double[][] FalconH1(int[] tokens)
    {
        int d = o.Dim, hd = o.HeadDim > 0 ? o.HeadDim : d / o.Heads, qDim = o.Heads * hd, kvDim = o.KvHeads * hd, n = tokens.Length;
        int group = o.Heads / o.KvHeads, inner = o.SsmInner, P = o.SsmHeadDim, H = inner / P, G = o.SsmGroups, N = o.SsmState, K = o.ConvKernel;
        int conv = inner + 2 * G * N, proj = inner + conv + H;
        var mup = new double[proj];
        for (int i = 0; i < proj; i++)
            mup[i] = o.SsmMultipliers[i < inner ? 0 : i < 2 * inner ? 1 : i < 2 * inner + G * N ? 2 : i < 2 * inner + 2 * G * N ? 3 : 4];
        var x = tokens.Select(tok => Enumerable.Range(0, d).Select(i => W("model.embed_tokens.weight")[(long)tok * d + i] * o.EmbeddingMultiplier).ToArray()).ToArray();
        for (int l = 0; l < o.Layers; l++)
        {
            string pre = $"model.layers.{l}.", m = pre + "mamba.";
            var keys = new List<double[]>[o.KvHeads]; var vals = new List<double[]>[o.KvHeads];
            for (int h = 0; h < o.KvHeads; h++) { keys[h] = []; vals[h] = []; }
            var convIn = new List<double[]>(); // xBC of every position so far
            var state = new double[H, P, N];
            var convW = W(m + "conv1d.weight"); var convB = W(m + "conv1d.bias");
            var aLog = W(m + "A_log"); var dtBias = W(m + "dt_bias"); var dSkip = W(m + "D");
            for (int t = 0; t < n; t++)
            {
                var hN = RmsNorm(x[t], W(pre + "input_layernorm.weight"), 1e-5);

                // Mamba2 mixer.
                var zxbcdt = MatVec(W(m + "in_proj.weight"), proj, Scale(hN, o.SsmInMultiplier));
                for (int i = 0; i < proj; i++) zxbcdt[i] *= mup[i];
                convIn.Add(Slice(zxbcdt, inner, conv));
                var xbc = new double[conv];
                for (int c = 0; c < conv; c++)
                {
                    double sum = convB[c];
                    for (int k = 0; k < K; k++)
                    {
                        int src = t - (K - 1) + k; // tap k sees position t − K + 1 + k (zeros before the start)
                        if (src >= 0) sum += convW[c * K + k] * convIn[src][c];
                    }
                    xbc[c] = Silu(sum);
                }
                var y = new double[inner];
                for (int hh = 0; hh < H; hh++)
                {
                    int g = hh / (H / G);
                    double delta = Softplus(zxbcdt[inner + conv + hh] + dtBias[hh]);
                    double decay = System.Math.Exp(delta * -System.Math.Exp(aLog[hh]));
                    for (int p = 0; p < P; p++)
                    {
                        double xv = xbc[hh * P + p], acc = 0;
                        for (int s = 0; s < N; s++)
                        {
                            state[hh, p, s] = state[hh, p, s] * decay + delta * xbc[inner + g * N + s] * xv;
                            acc += state[hh, p, s] * xbc[inner + G * N + g * N + s];
                        }
                        y[hh * P + p] = acc + dSkip[hh] * xv;
                    }
                }
                for (int i = 0; i < inner; i++) y[i] *= Silu(zxbcdt[i]);
                if (o.SsmNorm)
                {
                    var w = W(m + "norm.weight");
                    int gsz = inner / G;
                    for (int g = 0; g < G; g++)
                    {
                        double ms = 0;
                        for (int i = 0; i < gsz; i++) ms += y[g * gsz + i] * y[g * gsz + i];
                        double inv = 1 / System.Math.Sqrt(ms / gsz + 1e-5);
                        for (int i = 0; i < gsz; i++) y[g * gsz + i] *= inv * w[g * gsz + i];
                    }
                }
                var mixer = Scale(MatVec(W(m + "out_proj.weight"), d, y), o.SsmOutMultiplier);

                // Attention.
                var aIn = Scale(hN, o.AttentionInMultiplier);
                var q = MatVec(W(pre + "self_attn.q_proj.weight"), qDim, aIn);
                var k2 = Scale(MatVec(W(pre + "self_attn.k_proj.weight"), kvDim, aIn), o.KeyMultiplier);
                var v = MatVec(W(pre + "self_attn.v_proj.weight"), kvDim, aIn);
                for (int h = 0; h < o.Heads; h++) Rotate(q, h * hd, hd, t, o.RopeTheta);
                for (int h = 0; h < o.KvHeads; h++) { Rotate(k2, h * hd, hd, t, o.RopeTheta); keys[h].Add(Slice(k2, h * hd, hd)); vals[h].Add(Slice(v, h * hd, hd)); }
                var merged = new double[qDim];
                for (int h = 0; h < o.Heads; h++)
                    Attend(Slice(q, h * hd, hd), keys[h / group], vals[h / group], 0, t, 1 / System.Math.Sqrt(hd)).CopyTo(merged, h * hd);
                var attn = Scale(MatVec(W(pre + "self_attn.o_proj.weight"), d, merged), o.AttentionOutMultiplier);

                for (int i = 0; i < d; i++) x[t][i] += mixer[i] + attn[i];
                var h2 = RmsNorm(x[t], W(pre + "pre_ff_layernorm.weight"), 1e-5);
                var gate = MatVec(W(pre + "feed_forward.gate_proj.weight"), o.Hidden, h2);
                var up = MatVec(W(pre + "feed_forward.up_proj.weight"), o.Hidden, h2);
                var act = gate.Select((gv, i) => Silu(gv * o.MlpMultipliers[0]) * up[i]).ToArray();
                Add(x[t], Scale(MatVec(W(pre + "feed_forward.down_proj.weight"), d, act), o.MlpMultipliers[1]));
            }
        }
        string head = o.Tied ? "model.embed_tokens.weight" : "lm_head.weight";
        return x.Select(v => Scale(MatVec(W(head), Rows(head), RmsNorm(v, W("model.final_layernorm.weight"), 1e-5)), o.LmHeadMultiplier)).ToArray();
    }
}
