using MicroLm.Generation;
using MicroLm.Gguf;
using MicroLm.Models;

namespace MicroLm.FixedPoint;

/// <summary>LLaMA in fixed point: the same steps as <see cref="Llama"/> (pre-norm blocks with RMSNorm,
/// rotary attention on adjacent pairs with grouped-query heads, a SwiGLU feed-forward network), every
/// one in integers (docs/fixed-point.md); only the logits become floats, exactly, at the end.</summary>
internal sealed class FixedLlama : Architecture
{
    private sealed class Layer
    {
        public required int[] AttnNorm, FfnNorm;
        public required FixedMatrix Wq, Wk, Wv, Wo, Gate, Up, Down;
    }

    private readonly FixedMatrix _embedding, _output;
    private readonly int[] _outputNorm;
    private readonly Layer[] _layers;
    private readonly FixedRope _rope;
    private readonly UInt128 _eps;

    public FixedLlama(GgufFile file, ModelConfig c, uint epsBits, uint ropeBaseBits) : base(c)
    {
        int qDim = c.Heads * c.HeadDim;
        FixedMatrix Matrix(string name, int cols, int rows) => new(file, Tensor(file, name, cols, rows));
        int[] Vec(string name) => FixedMatrix.Vector(file, Tensor(file, name, c.Dim), c.Dim);
        _embedding = Matrix("token_embd.weight", c.Dim, c.VocabSize);
        _output = file.FindTensor("output.weight") != null ? Matrix("output.weight", c.Dim, c.VocabSize) : _embedding;
        _outputNorm = Vec("output_norm.weight");
        _layers = new Layer[c.Layers];
        for (int i = 0; i < c.Layers; i++)
        {
            string p = $"blk.{i}.";
            _layers[i] = new Layer
            {
                AttnNorm = Vec(p + "attn_norm.weight"),
                FfnNorm = Vec(p + "ffn_norm.weight"),
                Wq = Matrix(p + "attn_q.weight", c.Dim, qDim),
                Wk = Matrix(p + "attn_k.weight", c.Dim, c.KvDim),
                Wv = Matrix(p + "attn_v.weight", c.Dim, c.KvDim),
                Wo = Matrix(p + "attn_output.weight", qDim, c.Dim),
                Gate = Matrix(p + "ffn_gate.weight", c.Dim, c.HiddenDim),
                Up = Matrix(p + "ffn_up.weight", c.Dim, c.HiddenDim),
                Down = Matrix(p + "ffn_down.weight", c.HiddenDim, c.Dim),
            };
        }
        _rope = new FixedRope(c.RopeDims, ropeBaseBits, neoxStyle: false);
        _eps = FixedNorm.Epsilon(epsBits);
    }

    private sealed class Scratch(Session s, int maxBatch, FixedMatrix embedding, FixedRope rope, long scale)
        : FixedBatch(s, maxBatch, embedding, rope, scale)
    {
        public required int[] Q, K, V, Gate, Up, Hidden, Proj, Logits; // batch × rows
        public void NameAll()
        {
            var c = Session.Config;
            Name("q", Q, c.Heads * c.HeadDim); Name("k", K, c.KvDim); Name("v", V, c.KvDim);
            Name("ffn gate", Gate, c.HiddenDim); Name("ffn up", Up, c.HiddenDim); Name("ffn hidden", Hidden, c.HiddenDim);
            Name("projection", Proj, c.Dim); Name("logits", Logits, c.VocabSize);
        }
        public Action<int> AttnNorm = null!, RopeAndStore = null!, AttnResidual = null!, FfnNorm = null!, Gating = null!, FfnResidual = null!;
    }

    internal override object CreateScratch(Session s, int maxBatch)
    {
        var c = Config;
        int dim = c.Dim, qDim = c.Heads * c.HeadDim, kvDim = c.KvDim, hidden = c.HiddenDim, half = c.RopeDims / 2;
        var w = new Scratch(s, maxBatch, _embedding, _rope, FixedAttention.InverseSqrtQ32(c.HeadDim))
        {
            Q = new int[maxBatch * qDim], K = new int[maxBatch * kvDim], V = new int[maxBatch * kvDim],
            Gate = new int[maxBatch * hidden], Up = new int[maxBatch * hidden], Hidden = new int[maxBatch * hidden],
            Proj = new int[maxBatch * dim], Logits = new int[maxBatch * c.VocabSize],
        };
        w.NameAll();
        static Span<int> Row(int[] a, int t, int width) => FixedBatch.Row(a, t, width);
        w.AttnNorm = t => FixedNorm.Rms(Row(w.X, t, dim), _layers[w.Layer].AttnNorm, _eps, Row(w.Normed, t, dim), w.Guard);
        w.RopeAndStore = t =>
        {
            var cos = Row(w.Cos, t, half); var sin = Row(w.Sin, t, half);
            _rope.Apply(Row(w.Q, t, qDim), c.Heads, c.HeadDim, cos, sin, w.Guard);
            _rope.Apply(Row(w.K, t, kvDim), c.KvHeads, c.HeadDim, cos, sin, w.Guard);
            w.Attention.Store(w.Layer, w.StartPos + t, Row(w.K, t, kvDim), Row(w.V, t, kvDim));
        };
        w.AttnResidual = t => w.Add(Row(w.X, t, dim), Row(w.Proj, t, dim));
        w.FfnNorm = t => FixedNorm.Rms(Row(w.X, t, dim), _layers[w.Layer].FfnNorm, _eps, Row(w.Normed, t, dim), w.Guard);
        w.Gating = t =>
        {
            var gate = Row(w.Gate, t, hidden); var up = Row(w.Up, t, hidden); var h = Row(w.Hidden, t, hidden);
            for (int i = 0; i < hidden; i++) h[i] = Fixed.Saturate(Fixed.RoundShift((long)FixedMath.Silu(gate[i]) * up[i], Fixed.FracBits), w.Guard);
        };
        w.FfnResidual = t => w.Add(Row(w.X, t, dim), Row(w.Proj, t, dim));
        return w;
    }

    internal override void Forward(Session s, ReadOnlySpan<int> tokens, int startPos)
    {
        var c = Config;
        var w = (Scratch)s.Scratch;
        int n = tokens.Length;
        w.Begin(tokens, startPos);

        for (int l = 0; l < _layers.Length; l++)
        {
            var layer = _layers[l];
            w.Layer = l;
            // Attention block: x += Wo · attention(rope(Wq·norm(x)), rope(Wk·norm(x)), Wv·norm(x))
            s.ForEachToken(n, w.AttnNorm);
            w.MatMul(layer.Wq, w.Normed, n, w.Q);
            w.MatMul(layer.Wk, w.Normed, n, w.K);
            w.MatMul(layer.Wv, w.Normed, n, w.V);
            s.ForEachToken(n, w.RopeAndStore);
            w.Attention.Run(l, startPos, n, w.Q, c.Heads * c.HeadDim, w.Guard);
            w.MatMul(layer.Wo, w.Attention.Output, n, w.Proj);
            s.ForEachToken(n, w.AttnResidual);

            // Feed-forward block: x += Down · (silu(Gate·norm(x)) ⊙ Up·norm(x))
            s.ForEachToken(n, w.FfnNorm);
            w.MatMul(layer.Gate, w.Normed, n, w.Gate);
            w.MatMul(layer.Up, w.Normed, n, w.Up);
            s.ForEachToken(n, w.Gating);
            w.MatMul(layer.Down, w.Hidden, n, w.Proj);
            s.ForEachToken(n, w.FfnResidual);
            w.CheckRange($"layer {l}");
        }

        var (first, count) = s.LogitRows(n);
        for (int t = 0; t < count; t++)
            FixedNorm.Rms(FixedBatch.Row(w.X, first + t, c.Dim), _outputNorm, _eps, FixedBatch.Row(w.Normed, t, c.Dim), w.Guard);
        if (count == 0) return;
        w.MatMul(_output, w.Normed, count, w.Logits);
        w.CheckRange("the classifier");
        FixedLogits.ToFloat32(w.Logits.AsSpan(0, count * c.VocabSize), s);
    }
}
