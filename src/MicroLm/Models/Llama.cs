using MicroLm.Generation;
using MicroLm.Gguf;
using MicroLm.Math;
using MicroLm.Tensors;
using MicroLm.Tensors.Quants;

namespace MicroLm.Models;

/// <summary>LLaMA (llama2.c's stories models, TinyLlama): pre-norm blocks with RMSNorm, rotary
/// attention on adjacent pairs with grouped-query heads, and a SwiGLU feed-forward network.
/// Tensor names are llama.cpp's.</summary>
internal sealed class Llama : Architecture
{
    private sealed class Layer
    {
        public required ReadOnlyMemory<float> AttnNorm, FfnNorm;
        public required WeightMatrix Wq, Wk, Wv, Wo, Gate, Up, Down;
    }

    private readonly WeightMatrix _embedding, _output;
    private readonly ReadOnlyMemory<float> _outputNorm;
    private readonly Layer[] _layers;
    private readonly Rope _rope;

    public Llama(GgufFile file, ModelConfig c) : base(c)
    {
        int qDim = c.Heads * c.HeadDim;
        _embedding = new WeightMatrix(file, Tensor(file, "token_embd.weight", c.Dim, c.VocabSize));
        _output = file.FindTensor("output.weight") is { } o
            ? new WeightMatrix(file, Tensor(file, "output.weight", c.Dim, c.VocabSize))
            : _embedding; // tied classifier
        _outputNorm = WeightMatrix.Vector(file, Tensor(file, "output_norm.weight", c.Dim), c.Dim);
        _layers = new Layer[c.Layers];
        for (int i = 0; i < c.Layers; i++)
        {
            string p = $"blk.{i}.";
            _layers[i] = new Layer
            {
                AttnNorm = WeightMatrix.Vector(file, Tensor(file, p + "attn_norm.weight", c.Dim), c.Dim),
                FfnNorm = WeightMatrix.Vector(file, Tensor(file, p + "ffn_norm.weight", c.Dim), c.Dim),
                Wq = new WeightMatrix(file, Tensor(file, p + "attn_q.weight", c.Dim, qDim)),
                Wk = new WeightMatrix(file, Tensor(file, p + "attn_k.weight", c.Dim, c.KvDim)),
                Wv = new WeightMatrix(file, Tensor(file, p + "attn_v.weight", c.Dim, c.KvDim)),
                Wo = new WeightMatrix(file, Tensor(file, p + "attn_output.weight", qDim, c.Dim)),
                Gate = new WeightMatrix(file, Tensor(file, p + "ffn_gate.weight", c.Dim, c.HiddenDim)),
                Up = new WeightMatrix(file, Tensor(file, p + "ffn_up.weight", c.Dim, c.HiddenDim)),
                Down = new WeightMatrix(file, Tensor(file, p + "ffn_down.weight", c.HiddenDim, c.Dim)),
            };
        }
        _rope = new Rope(c.RopeDims, c.RopeFreqBase, neoxStyle: false);
    }

    private sealed class Scratch(Session s, int maxBatch, WeightMatrix embedding, Rope rope) : TokenBatch(s, maxBatch, embedding, rope)
    {
        public required Activation[] Hidden;
        public required float[] Q, K, V, Gate, Up, Proj;  // batch × rows
        // Per-token steps (see TokenBatch), made once in CreateScratch.
        public Action<int> AttnNorm = null!, RopeAndStore = null!, FfnNorm = null!, Gating = null!, Residual = null!;
    }

    internal override object CreateScratch(Session s, int maxBatch)
    {
        var c = Config;
        int dim = c.Dim, qDim = c.Heads * c.HeadDim, kvDim = c.KvDim, hidden = c.HiddenDim, half = c.RopeDims / 2;
        var w = new Scratch(s, maxBatch, _embedding, _rope)
        {
            Hidden = TokenBatch.Activations(maxBatch, hidden),
            Q = new float[maxBatch * qDim], K = new float[maxBatch * kvDim], V = new float[maxBatch * kvDim],
            Gate = new float[maxBatch * hidden], Up = new float[maxBatch * hidden], Proj = new float[maxBatch * dim],
        };
        Span<float> Row(float[] a, int t, int width) => TokenBatch.Row(a, t, width);
        w.AttnNorm = t => w.RmsNorm(t, t, _layers[w.Layer].AttnNorm.Span, c.NormEpsilon);
        w.RopeAndStore = t =>
        {
            var cos = Row(w.Cos, t, half); var sin = Row(w.Sin, t, half);
            _rope.Apply(Row(w.Q, t, qDim), c.Heads, c.HeadDim, cos, sin);
            _rope.Apply(Row(w.K, t, kvDim), c.KvHeads, c.HeadDim, cos, sin);
            Attention.Store(s, w.Layer, w.StartPos + t, Row(w.K, t, kvDim), Row(w.V, t, kvDim));
        };
        w.FfnNorm = t =>
        {
            Kernels.Add(Row(w.X, t, dim), Row(w.Proj, t, dim));
            w.RmsNorm(t, t, _layers[w.Layer].FfnNorm.Span, c.NormEpsilon);
        };
        w.Gating = t =>
        {
            var h = w.Hidden[t].Span;
            DetMath.Silu(Row(w.Gate, t, hidden), h);
            var up = Row(w.Up, t, hidden);
            for (int i = 0; i < hidden; i++) h[i] *= up[i];
            w.Hidden[t].Invalidate();
        };
        w.Residual = t => Kernels.Add(Row(w.X, t, dim), Row(w.Proj, t, dim));
        return w;
    }

    internal override void Forward(Session s, ReadOnlySpan<int> tokens, int startPos)
    {
        var c = Config;
        var w = (Scratch)s.Scratch;
        int n = tokens.Length, dim = c.Dim;
        w.Begin(s, tokens, startPos);

        for (int l = 0; l < _layers.Length; l++)
        {
            var layer = _layers[l];
            w.Layer = l;
            // Attention block: x += Wo · attention(rope(Wq·norm(x)), rope(Wk·norm(x)), Wv·norm(x))
            s.ForEachToken(n, w.AttnNorm);
            s.MatMul(layer.Wq, w.Normed, n, w.Q);
            s.MatMul(layer.Wk, w.Normed, n, w.K);
            s.MatMul(layer.Wv, w.Normed, n, w.V);
            s.ForEachToken(n, w.RopeAndStore);
            w.Attention.Run(l, startPos, n, w.Q, c.Heads * c.HeadDim, 0);
            s.MatMul(layer.Wo, w.Attention.Output, n, w.Proj);

            // Feed-forward block: x += Down · (silu(Gate·norm(x)) ⊙ Up·norm(x))
            s.ForEachToken(n, w.FfnNorm); // x += attention output, then norm
            s.MatMul(layer.Gate, w.Normed, n, w.Gate);
            s.MatMul(layer.Up, w.Normed, n, w.Up);
            s.ForEachToken(n, w.Gating);
            s.MatMul(layer.Down, w.Hidden, n, w.Proj);
            s.ForEachToken(n, w.Residual);
            s.CheckFinite(w.X.AsSpan(0, n * dim), l);
        }

        var (first, count) = s.LogitRows(n);
        for (int t = 0; t < count; t++) w.RmsNorm(first + t, t, _outputNorm.Span, c.NormEpsilon);
        if (count > 0) s.MatMul(_output, w.Normed, count, s.Logits);
    }
}
