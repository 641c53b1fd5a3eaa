using MicroLm.Generation;
using MicroLm.Gguf;
using MicroLm.Models;
using Layer = MicroLm.Models.LlamaWeights<MicroLm.FixedPoint.FixedMatrix, int[]>.Layer;

namespace MicroLm.FixedPoint;

/// <summary>LLaMA in fixed point: the steps of <see cref="Llama"/> (pre-norm blocks with RMSNorm, rotary
/// attention on adjacent pairs with grouped-query heads, a SwiGLU feed-forward network), every one in
/// integers (docs/fixed-point.md); only the logits become floats, exactly, at the end.</summary>
internal sealed class FixedLlama : Architecture
{
    private readonly FixedMatrix _embedding, _output;
    private readonly int[] _outputNorm;
    private readonly Layer[] _layers;
    private readonly FixedRope _rope;
    private readonly FixedAttentionOptions _attention;
    private readonly UInt128 _eps;

    public FixedLlama(GgufFile file, ModelConfig c, uint epsBits, uint ropeBaseBits) : base(c)
    {
        var w = new LlamaWeights<FixedMatrix, int[]>(file, c, t => new FixedMatrix(file, t), (t, n) => FixedMatrix.Vector(file, t, n));
        (_embedding, _output, _outputNorm, _layers) = (w.Embedding, w.Output, w.OutputNorm, w.Layers);
        _rope = new FixedRope(c.RopeDims, ropeBaseBits, neoxStyle: false);
        _attention = FixedAttentionOptions.Standard(c, _rope);
        _eps = FixedNorm.Epsilon(epsBits);
    }

    internal override ForwardPass CreatePass(Session s) => new Pass(this, s);

    /// <summary>One session's caches and scratch for batches of up to s.MaxBatch tokens (all Q16.16).</summary>
    private sealed class Pass : ForwardPass, IFixedPass
    {
        private readonly FixedLlama _m;
        private readonly Session _s;
        private readonly FixedKvCache[] _caches;
        private readonly FixedBatch _batch;
        private readonly FixedAttentionBatch _attention;
        private readonly int[] _q, _k, _v, _gate, _up, _hidden, _proj, _logits; // batch × rows

        public override IReadOnlyList<LayerMemory> Memory => _caches;
        public FixedBatch Batch => _batch;

        public Pass(FixedLlama m, Session s)
        {
            FixedBackend.RequireOwnCache(s);
            _m = m; _s = s;
            var c = m.Config;
            int n = s.MaxBatch;
            _caches = Enumerable.Range(0, c.Layers).Select(l => new FixedKvCache(l, m._attention, s.ContextLength)).ToArray();
            _batch = new FixedBatch(s, n, c.Dim, m._rope);
            _attention = new FixedAttentionBatch(s, _batch, m._attention.QueryDim, c.HeadDim);
            _q = new int[n * m._attention.QueryDim];
            _k = new int[n * c.KvDim];
            _v = new int[n * c.KvDim];
            _gate = new int[n * c.HiddenDim];
            _up = new int[n * c.HiddenDim];
            _hidden = new int[n * c.HiddenDim];
            _proj = new int[n * c.Dim];
            _logits = new int[n * c.VocabSize];
            _batch.Name("q", _q, m._attention.QueryDim); _batch.Name("k", _k, c.KvDim); _batch.Name("v", _v, c.KvDim);
            _batch.Name("ffn gate", _gate, c.HiddenDim); _batch.Name("ffn up", _up, c.HiddenDim);
            _batch.Name("ffn hidden", _hidden, c.HiddenDim); _batch.Name("projection", _proj, c.Dim);
            _batch.Name("logits", _logits, c.VocabSize);
        }

        public override void Forward(ReadOnlySpan<int> tokens, int startPos)
        {
            var (m, s, b) = (_m, _s, _batch);
            var c = m.Config;
            b.Embed(m._embedding, tokens, startPos);

            for (int l = 0; l < m._layers.Length; l++)
            {
                var layer = m._layers[l];

                // Attention: x += Wo · attention(rope(Wq·norm(x)), rope(Wk·norm(x)), Wv·norm(x))
                b.RmsNorm(layer.AttnNorm, m._eps);
                b.MatMul(layer.Wq, b.Normed, _q);
                b.MatMul(layer.Wk, b.Normed, _k);
                b.MatMul(layer.Wv, b.Normed, _v);
                _attention.Run(m._attention, _caches[l], new(_q, m._attention.QueryDim, 0), new(_k, c.KvDim, 0), new(_v, c.KvDim, 0));
                b.MatMul(layer.Wo, _attention.Output, _proj);
                b.AddResidual(_proj);

                // Feed-forward: x += Down · (silu(Gate·norm(x)) ⊙ Up·norm(x))
                b.RmsNorm(layer.FfnNorm, m._eps);
                b.MatMul(layer.Gate, b.Normed, _gate);
                b.MatMul(layer.Up, b.Normed, _up);
                b.SwiGlu(_gate, _up, c.HiddenDim, _hidden);
                b.MatMul(layer.Down, _hidden, _proj);
                b.AddResidual(_proj);

                b.CheckRange($"layer {l}");
            }

            // Classifier: logits = Wout · norm(x), for the rows the session wants; then the one conversion to float.
            var (first, count) = s.LogitRows(tokens.Length);
            if (count == 0) return;
            b.RmsNormRows(first, count, m._outputNorm, m._eps);
            b.MatMul(m._output, b.Normed, count, _logits);
            b.CheckRange("the classifier");
            FixedLogits.ToFloat32(_logits.AsSpan(0, count * c.VocabSize), s);
        }
    }
}
