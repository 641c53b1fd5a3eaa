using MicroLm.Generation;
using MicroLm.Gguf;
using MicroLm.Models;

namespace MicroLm.FixedPoint;

/// <summary>GPT-NeoX (Pythia) in fixed point: the same steps as <see cref="GptNeoX"/> (LayerNorm with
/// bias, fused QKV with bias, rotary embeddings on halves over the first rope.dimension_count values,
/// biased output and feed-forward projections with GELU in its tanh form, parallel or sequential
/// residual), every one in integers; only the logits become floats, exactly, at the end.</summary>
internal sealed class FixedGptNeoX : Architecture
{
    private sealed class Layer
    {
        public required int[] AttnNorm, AttnNormBias, QkvBias, OutputBias, FfnNorm, FfnNormBias, UpBias, DownBias;
        public required FixedMatrix Qkv, Wo, Up, Down;
    }

    private readonly FixedMatrix _embedding, _output;
    private readonly int[] _outputNorm, _outputNormBias;
    private readonly Layer[] _layers;
    private readonly FixedRope _rope;
    private readonly UInt128 _eps;
    private readonly bool _parallelResidual;

    public FixedGptNeoX(GgufFile file, ModelConfig c, uint epsBits, uint ropeBaseBits) : base(c)
    {
        _parallelResidual = file.GetBool("gptneox.use_parallel_residual")
            ?? throw new MicroLmException("model is missing metadata key 'gptneox.use_parallel_residual'");
        int qDim = c.Heads * c.HeadDim, qkv = qDim + 2 * c.KvDim;
        FixedMatrix Matrix(string name, int cols, int rows) => new(file, Tensor(file, name, cols, rows));
        int[] Vec(string name, int n) => FixedMatrix.Vector(file, Tensor(file, name, n), n);
        _embedding = Matrix("token_embd.weight", c.Dim, c.VocabSize);
        _output = Matrix("output.weight", c.Dim, c.VocabSize);
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
                Qkv = Matrix(p + "attn_qkv.weight", c.Dim, qkv),
                QkvBias = Vec(p + "attn_qkv.bias", qkv),
                Wo = Matrix(p + "attn_output.weight", qDim, c.Dim),
                OutputBias = Vec(p + "attn_output.bias", c.Dim),
                FfnNorm = Vec(p + "ffn_norm.weight", c.Dim),
                FfnNormBias = Vec(p + "ffn_norm.bias", c.Dim),
                Up = Matrix(p + "ffn_up.weight", c.Dim, c.HiddenDim),
                UpBias = Vec(p + "ffn_up.bias", c.HiddenDim),
                Down = Matrix(p + "ffn_down.weight", c.HiddenDim, c.Dim),
                DownBias = Vec(p + "ffn_down.bias", c.Dim),
            };
        }
        _rope = new FixedRope(c.RopeDims, ropeBaseBits, neoxStyle: true);
        _eps = FixedNorm.Epsilon(epsBits);
    }

    private sealed class Scratch(Session s, int maxBatch, FixedMatrix embedding, FixedRope rope, long scale)
        : FixedBatch(s, maxBatch, embedding, rope, scale)
    {
        public required int[] Qkv, Up, Hidden, AttnProj, FfnProj, Logits; // batch × rows
        public void NameAll()
        {
            var c = Session.Config;
            Name("qkv", Qkv, c.Heads * c.HeadDim + 2 * c.KvDim); Name("ffn up", Up, c.HiddenDim); Name("ffn hidden", Hidden, c.HiddenDim);
            Name("attention projection", AttnProj, c.Dim); Name("ffn projection", FfnProj, c.Dim); Name("logits", Logits, c.VocabSize);
        }
        public Action<int> AttnNorm = null!, QkvRope = null!, FfnNorm = null!, UpGelu = null!;
        public Action<int> ParallelResidual = null!, AttnResidual = null!, FfnResidual = null!;
    }

    internal override object CreateScratch(Session s, int maxBatch)
    {
        var c = Config;
        int dim = c.Dim, half = c.RopeDims / 2, qDim = c.Heads * c.HeadDim, kvDim = c.KvDim, hidden = c.HiddenDim;
        int qkv = qDim + 2 * kvDim;
        var w = new Scratch(s, maxBatch, _embedding, _rope, FixedAttention.InverseSqrtQ32(c.HeadDim))
        {
            Qkv = new int[maxBatch * qkv], Up = new int[maxBatch * hidden], Hidden = new int[maxBatch * hidden],
            AttnProj = new int[maxBatch * dim], FfnProj = new int[maxBatch * dim], Logits = new int[maxBatch * c.VocabSize],
        };
        w.NameAll();
        static Span<int> Row(int[] a, int t, int width) => FixedBatch.Row(a, t, width);
        w.AttnNorm = t => FixedNorm.Layer(Row(w.X, t, dim), _layers[w.Layer].AttnNorm, _layers[w.Layer].AttnNormBias, _eps, Row(w.Normed, t, dim), w.Guard);
        w.QkvRope = t =>
        {
            var row = Row(w.Qkv, t, qkv);
            w.Add(row, _layers[w.Layer].QkvBias);
            var cos = Row(w.Cos, t, half); var sin = Row(w.Sin, t, half);
            _rope.Apply(row[..qDim], c.Heads, c.HeadDim, cos, sin, w.Guard);
            _rope.Apply(row.Slice(qDim, kvDim), c.KvHeads, c.HeadDim, cos, sin, w.Guard);
            w.Attention.Store(w.Layer, w.StartPos + t, row.Slice(qDim, kvDim), row.Slice(qDim + kvDim, kvDim));
        };
        w.FfnNorm = t => FixedNorm.Layer(Row(w.X, t, dim), _layers[w.Layer].FfnNorm, _layers[w.Layer].FfnNormBias, _eps, Row(w.Normed, t, dim), w.Guard);
        w.UpGelu = t =>
        {
            var up = Row(w.Up, t, hidden); var h = Row(w.Hidden, t, hidden);
            w.Add(up, _layers[w.Layer].UpBias);
            for (int i = 0; i < hidden; i++) h[i] = FixedMath.Gelu(up[i]);
        };
        // x = (x + mlp(ln2(x))) + attn, in llama.cpp's order of additions.
        w.ParallelResidual = t =>
        {
            var layer = _layers[w.Layer];
            var attn = Row(w.AttnProj, t, dim); var ffn = Row(w.FfnProj, t, dim); var x = Row(w.X, t, dim);
            w.Add(attn, layer.OutputBias);
            w.Add(ffn, layer.DownBias);
            w.Add(x, ffn);
            w.Add(x, attn);
        };
        // Sequential: x = x + attn, then (after the feed-forward) x = x + mlp(ln2(x)).
        w.AttnResidual = t =>
        {
            var attn = Row(w.AttnProj, t, dim);
            w.Add(attn, _layers[w.Layer].OutputBias);
            w.Add(Row(w.X, t, dim), attn);
        };
        w.FfnResidual = t =>
        {
            var ffn = Row(w.FfnProj, t, dim);
            w.Add(ffn, _layers[w.Layer].DownBias);
            w.Add(Row(w.X, t, dim), ffn);
        };
        return w;
    }

    internal override void Forward(Session s, ReadOnlySpan<int> tokens, int startPos)
    {
        var c = Config;
        var w = (Scratch)s.Scratch;
        int n = tokens.Length, qkv = c.Heads * c.HeadDim + 2 * c.KvDim;
        w.Begin(tokens, startPos);

        for (int l = 0; l < _layers.Length; l++)
        {
            var layer = _layers[l];
            w.Layer = l;
            // Attention: proj = Wo · attention(rope(Q), rope(K), V) + bo, with Q|K|V = Wqkv·ln1(x) + bqkv.
            s.ForEachToken(n, w.AttnNorm);
            w.MatMul(layer.Qkv, w.Normed, n, w.Qkv);
            s.ForEachToken(n, w.QkvRope);
            w.Attention.Run(l, startPos, n, w.Qkv, qkv, w.Guard);
            w.MatMul(layer.Wo, w.Attention.Output, n, w.AttnProj);

            if (_parallelResidual)
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
            w.CheckRange($"layer {l}");
        }

        var (first, count) = s.LogitRows(n);
        for (int t = 0; t < count; t++)
            FixedNorm.Layer(FixedBatch.Row(w.X, first + t, c.Dim), _outputNorm, _outputNormBias, _eps, FixedBatch.Row(w.Normed, t, c.Dim), w.Guard);
        if (count == 0) return;
        w.MatMul(_output, w.Normed, count, w.Logits);
        w.CheckRange("the classifier");
        FixedLogits.ToFloat32(w.Logits.AsSpan(0, count * c.VocabSize), s);
    }

    /// <summary>FfnProj = Down · gelu(Up · ln2(x) + b_up); the residual steps add b_down.</summary>
    private static void FeedForward(Session s, Scratch w, Layer layer, int n)
    {
        s.ForEachToken(n, w.FfnNorm);
        w.MatMul(layer.Up, w.Normed, n, w.Up);
        s.ForEachToken(n, w.UpGelu);
        w.MatMul(layer.Down, w.Hidden, n, w.FfnProj);
    }
}
