using MicroLm.Generation;
using MicroLm.Gguf;
using MicroLm.Math;
using MicroLm.Tensors;
using MicroLm.Tensors.Quants;

namespace MicroLm.Models;

/// <summary>LLaMA (llama2.c's stories models, TinyLlama): pre-norm blocks with RMSNorm, rotary
/// attention on adjacent pairs with grouped-query heads, and a SwiGLU feed-forward network.
/// Tensor names are llama.cpp's.</summary>
public sealed class Llama : Architecture
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

    private sealed class Scratch
    {
        public required float[] X;                       // residual stream, batch × dim
        public required Activation[] Normed, Hidden;
        public required float[] Q, K, V, Gate, Up, Proj;  // batch × rows
        public required float[] Cos, Sin;                // batch × rope pairs
        public required AttentionBatch Attention;
        // Per-token steps, created once (no allocation per call) and run by Session.ForEachToken;
        // they read the current layer and start position from here.
        public Action<int> Embed = null!, AttnNorm = null!, RopeAndStore = null!, FfnNorm = null!, Gating = null!, Residual = null!;
        public int Layer, StartPos;
        public required int[] Tokens;                    // the batch's token ids
    }

    internal override object CreateScratch(Session s, int maxBatch)
    {
        var c = Config;
        int qDim = c.Heads * c.HeadDim;
        Activation[] Acts(int n) => Enumerable.Range(0, maxBatch).Select(_ => new Activation(n)).ToArray();
        var scratch = new Scratch
        {
            X = new float[maxBatch * c.Dim],
            Normed = Acts(c.Dim), Hidden = Acts(c.HiddenDim),
            Q = new float[maxBatch * qDim], K = new float[maxBatch * c.KvDim], V = new float[maxBatch * c.KvDim],
            Gate = new float[maxBatch * c.HiddenDim], Up = new float[maxBatch * c.HiddenDim], Proj = new float[maxBatch * c.Dim],
            Cos = new float[maxBatch * c.RopeDims / 2], Sin = new float[maxBatch * c.RopeDims / 2],
            Attention = new AttentionBatch(s, maxBatch),
            Tokens = new int[maxBatch],
        };
        var w = scratch;
        int dim = c.Dim, half = c.RopeDims / 2, kvDim = c.KvDim, hidden = c.HiddenDim;
        w.Embed = t =>
        {
            _embedding.ReadRow(w.Tokens[t], w.X.AsSpan(t * dim, dim));
            _rope.Angles(w.StartPos + t, w.Cos.AsSpan(t * half, half), w.Sin.AsSpan(t * half, half));
        };
        w.AttnNorm = t => Norm(w, t, _layers[w.Layer].AttnNorm.Span);
        w.RopeAndStore = t =>
        {
            var cos = w.Cos.AsSpan(t * half, half); var sin = w.Sin.AsSpan(t * half, half);
            _rope.Apply(w.Q.AsSpan(t * qDim, qDim), c.Heads, c.HeadDim, cos, sin);
            _rope.Apply(w.K.AsSpan(t * kvDim, kvDim), c.KvHeads, c.HeadDim, cos, sin);
            Attention.Store(s, w.Layer, w.StartPos + t, w.K.AsSpan(t * kvDim, kvDim), w.V.AsSpan(t * kvDim, kvDim));
        };
        w.FfnNorm = t =>
        {
            Kernels.Add(w.X.AsSpan(t * dim, dim), w.Proj.AsSpan(t * dim, dim));
            Norm(w, t, _layers[w.Layer].FfnNorm.Span);
        };
        w.Gating = t =>
        {
            var h = w.Hidden[t].Span;
            DetMath.Silu(w.Gate.AsSpan(t * hidden, hidden), h);
            var up = w.Up.AsSpan(t * hidden, hidden);
            for (int i = 0; i < hidden; i++) h[i] *= up[i];
            w.Hidden[t].Invalidate();
        };
        w.Residual = t => Kernels.Add(w.X.AsSpan(t * dim, dim), w.Proj.AsSpan(t * dim, dim));
        return scratch;
    }

    private void Norm(Scratch w, int t, ReadOnlySpan<float> weight)
    {
        int dim = Config.Dim;
        Kernels.RmsNorm(w.X.AsSpan(t * dim, dim), weight, Config.NormEpsilon, w.Normed[t].Span);
        w.Normed[t].Invalidate();
    }

    internal override void Forward(Session s, ReadOnlySpan<int> tokens, int startPos)
    {
        var c = Config;
        var w = (Scratch)s.Scratch;
        int n = tokens.Length, dim = c.Dim;
        w.StartPos = startPos;
        tokens.CopyTo(w.Tokens);
        s.ForEachToken(n, w.Embed);

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
        BatchOps.RmsNorm(w.X, dim, _outputNorm.Span, c.NormEpsilon, w.Normed, count, first);
        if (count > 0) s.MatMul(_output, w.Normed, count, s.Logits);
    }
}
