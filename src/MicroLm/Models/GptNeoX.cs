using MicroLm.Gguf;
using MicroLm.Generation;
using MicroLm.Math;
using MicroLm.Tensors;
using MicroLm.Tensors.Quants;

namespace MicroLm.Models;

/// <summary>GPT-NeoX (Pythia, GPT-NeoX-20B): pre-norm blocks with LayerNorm (weight and bias), one fused
/// QKV projection with bias, rotary embeddings on halves (x[k], x[k+d/2]) over the first
/// "rope.dimension_count" values of each head (the rest pass through), biased output and feed-forward
/// projections with GELU (tanh form), an untied classifier. "use_parallel_residual" chooses
/// x + attn(ln1(x)) + mlp(ln2(x)) (Pythia) or the sequential x' = x + attn(ln1(x)); x' + mlp(ln2(x')).
/// Key and tensor names, the Q|K|V row order of attn_qkv and the order of the additions are llama.cpp's
/// (llm_build_gptneox; convert_hf_to_gguf.py already un-interleaves HF's per-head q,k,v rows).</summary>
internal sealed class GptNeoX : Architecture
{
    private sealed class Layer
    {
        public required ReadOnlyMemory<float> AttnNorm, AttnNormBias, QkvBias, OutputBias, FfnNorm, FfnNormBias, UpBias, DownBias;
        public required WeightMatrix Qkv, Wo, Up, Down;
    }

    private readonly WeightMatrix _embedding, _output;
    private readonly ReadOnlyMemory<float> _outputNorm, _outputNormBias;
    private readonly Layer[] _layers;
    private readonly Rope _rope;

    /// <summary>"gptneox.use_parallel_residual" (required, as in llama.cpp).</summary>
    public bool ParallelResidual { get; }

    public GptNeoX(GgufFile file, ModelConfig c) : base(c)
    {
        ParallelResidual = file.GetBool("gptneox.use_parallel_residual")
            ?? throw new MicroLmException("model is missing metadata key 'gptneox.use_parallel_residual'");
        int qDim = c.Heads * c.HeadDim, qkv = qDim + 2 * c.KvDim;
        ReadOnlyMemory<float> Vec(string name, int n) => WeightMatrix.Vector(file, Tensor(file, name, n), n);
        _embedding = new WeightMatrix(file, Tensor(file, "token_embd.weight", c.Dim, c.VocabSize));
        _output = new WeightMatrix(file, Tensor(file, "output.weight", c.Dim, c.VocabSize));
        _outputNorm = Vec("output_norm.weight", c.Dim);
        _outputNormBias = Vec("output_norm.bias", c.Dim);
        _layers = new Layer[c.Layers];
        for (int i = 0; i < c.Layers; i++)
        {
            string p = $"blk.{i}.";
            _layers[i] = new Layer
            {
                AttnNorm = Vec(p + "attn_norm.weight", c.Dim),
                AttnNormBias = Vec(p + "attn_norm.bias", c.Dim),
                Qkv = new WeightMatrix(file, Tensor(file, p + "attn_qkv.weight", c.Dim, qkv)),
                QkvBias = Vec(p + "attn_qkv.bias", qkv),
                Wo = new WeightMatrix(file, Tensor(file, p + "attn_output.weight", qDim, c.Dim)),
                OutputBias = Vec(p + "attn_output.bias", c.Dim),
                FfnNorm = Vec(p + "ffn_norm.weight", c.Dim),
                FfnNormBias = Vec(p + "ffn_norm.bias", c.Dim),
                Up = new WeightMatrix(file, Tensor(file, p + "ffn_up.weight", c.Dim, c.HiddenDim)),
                UpBias = Vec(p + "ffn_up.bias", c.HiddenDim),
                Down = new WeightMatrix(file, Tensor(file, p + "ffn_down.weight", c.HiddenDim, c.Dim)),
                DownBias = Vec(p + "ffn_down.bias", c.Dim),
            };
        }
        _rope = new Rope(c.RopeDims, c.RopeFreqBase, neoxStyle: true);
    }

    private sealed class Scratch(Session s, int maxBatch, WeightMatrix embedding, Rope rope) : TokenBatch(s, maxBatch, embedding, rope)
    {
        public required Activation[] Hidden;
        public required float[] Qkv, Up, AttnProj, FfnProj; // batch × rows
        // Per-token steps (see TokenBatch), made once in CreateScratch.
        public Action<int> AttnNorm = null!, QkvRope = null!, FfnNorm = null!, UpGelu = null!;
        public Action<int> ParallelResidual = null!, AttnResidual = null!, FfnResidual = null!;
    }

    internal override object CreateScratch(Session s, int maxBatch)
    {
        var c = Config;
        int dim = c.Dim, half = c.RopeDims / 2, qDim = c.Heads * c.HeadDim, kvDim = c.KvDim, hidden = c.HiddenDim;
        int qkv = qDim + 2 * kvDim;
        var w = new Scratch(s, maxBatch, _embedding, _rope)
        {
            Hidden = TokenBatch.Activations(maxBatch, hidden),
            Qkv = new float[maxBatch * qkv], Up = new float[maxBatch * hidden],
            AttnProj = new float[maxBatch * dim], FfnProj = new float[maxBatch * dim],
        };
        Span<float> Row(float[] a, int t, int width) => TokenBatch.Row(a, t, width);
        w.AttnNorm = t => w.LayerNorm(t, t, _layers[w.Layer].AttnNorm.Span, _layers[w.Layer].AttnNormBias.Span, c.NormEpsilon);
        w.QkvRope = t =>
        {
            var row = Row(w.Qkv, t, qkv);
            Kernels.Add(row, _layers[w.Layer].QkvBias.Span);
            var cos = Row(w.Cos, t, half); var sin = Row(w.Sin, t, half);
            _rope.Apply(row[..qDim], c.Heads, c.HeadDim, cos, sin);
            _rope.Apply(row.Slice(qDim, kvDim), c.KvHeads, c.HeadDim, cos, sin);
            Attention.Store(s, w.Layer, w.StartPos + t, row.Slice(qDim, kvDim), row.Slice(qDim + kvDim, kvDim));
        };
        w.FfnNorm = t => w.LayerNorm(t, t, _layers[w.Layer].FfnNorm.Span, _layers[w.Layer].FfnNormBias.Span, c.NormEpsilon);
        w.UpGelu = t =>
        {
            var up = Row(w.Up, t, hidden);
            Kernels.Add(up, _layers[w.Layer].UpBias.Span);
            DetMath.GeluTanh(up, w.Hidden[t].Span);
            w.Hidden[t].Invalidate();
        };
        // x = (x + mlp(ln2(x))) + attn, in llama.cpp's order of additions.
        w.ParallelResidual = t =>
        {
            var layer = _layers[w.Layer];
            var attn = Row(w.AttnProj, t, dim); var ffn = Row(w.FfnProj, t, dim); var x = Row(w.X, t, dim);
            Kernels.Add(attn, layer.OutputBias.Span);
            Kernels.Add(ffn, layer.DownBias.Span);
            Kernels.Add(x, ffn);
            Kernels.Add(x, attn);
        };
        // Sequential: x = x + attn, then (after the feed-forward) x = x + mlp(ln2(x)).
        w.AttnResidual = t =>
        {
            var attn = Row(w.AttnProj, t, dim);
            Kernels.Add(attn, _layers[w.Layer].OutputBias.Span);
            Kernels.Add(Row(w.X, t, dim), attn);
        };
        w.FfnResidual = t =>
        {
            var ffn = Row(w.FfnProj, t, dim);
            Kernels.Add(ffn, _layers[w.Layer].DownBias.Span);
            Kernels.Add(Row(w.X, t, dim), ffn);
        };
        return w;
    }

    internal override void Forward(Session s, ReadOnlySpan<int> tokens, int startPos)
    {
        var c = Config;
        var w = (Scratch)s.Scratch;
        int n = tokens.Length, dim = c.Dim, qkv = c.Heads * c.HeadDim + 2 * c.KvDim;
        w.Begin(s, tokens, startPos);

        for (int l = 0; l < _layers.Length; l++)
        {
            var layer = _layers[l];
            w.Layer = l;
            // Attention: proj = Wo · attention(rope(Q), rope(K), V) + bo, with Q|K|V = Wqkv·ln1(x) + bqkv.
            s.ForEachToken(n, w.AttnNorm);
            s.MatMul(layer.Qkv, w.Normed, n, w.Qkv);
            s.ForEachToken(n, w.QkvRope);
            w.Attention.Run(l, startPos, n, w.Qkv, qkv, 0);
            s.MatMul(layer.Wo, w.Attention.Output, n, w.AttnProj);

            if (ParallelResidual)
            {
                FeedForward(s, w, layer, n); // reads x before the attention output is added
                s.ForEachToken(n, w.ParallelResidual);
            }
            else
            {
                s.ForEachToken(n, w.AttnResidual);
                FeedForward(s, w, layer, n);
                s.ForEachToken(n, w.FfnResidual);
            }
            s.CheckFinite(w.X.AsSpan(0, n * dim), l);
        }

        var (first, count) = s.LogitRows(n);
        for (int t = 0; t < count; t++) w.LayerNorm(first + t, t, _outputNorm.Span, _outputNormBias.Span, c.NormEpsilon);
        if (count > 0) s.MatMul(_output, w.Normed, count, s.Logits);
    }

    /// <summary>FfnProj = Down · gelu(Up · ln2(x) + b_up); the residual steps add b_down.</summary>
    private static void FeedForward(Session s, Scratch w, Layer layer, int n)
    {
        s.ForEachToken(n, w.FfnNorm);
        s.MatMul(layer.Up, w.Normed, n, w.Up);
        s.ForEachToken(n, w.UpGelu);
        s.MatMul(layer.Down, w.Hidden, n, w.FfnProj);
    }
}
