using MicroLm.Generation;
using MicroLm.Gguf;
using MicroLm.Math;
using MicroLm.Tensors;
using MicroLm.Tensors.Quants;
using Layer = MicroLm.Models.LlamaWeights<MicroLm.Tensors.WeightMatrix, System.ReadOnlyMemory<float>>.Layer;

namespace MicroLm.Models;

/// <summary>LLaMA (llama2.c's stories models, TinyLlama): pre-norm blocks with RMSNorm, rotary
/// attention on adjacent pairs with grouped-query heads, and a SwiGLU feed-forward network.
/// Tensor names are llama.cpp's.</summary>
internal sealed class Llama : Architecture
{
    private readonly WeightMatrix _embedding, _output;
    private readonly ReadOnlyMemory<float> _outputNorm;
    private readonly Layer[] _layers;
    private readonly Rope _rope;
    private readonly AttentionOptions _attention;

    public Llama(GgufFile file, ModelConfig c) : base(c)
    {
        var w = new LlamaWeights<WeightMatrix, ReadOnlyMemory<float>>(file, c, t => new WeightMatrix(file, t), (t, n) => WeightMatrix.Vector(file, t, n));
        (_embedding, _output, _outputNorm, _layers) = (w.Embedding, w.Output, w.OutputNorm, w.Layers);
        _rope = new Rope(c.RopeDims, c.RopeFreqBase, neoxStyle: false);
        _attention = AttentionOptions.Standard(c, _rope);
    }

    internal override ForwardPass CreatePass(Session s) => new Pass(this, s);

    /// <summary>One session's caches and scratch for batches of up to s.MaxBatch tokens.</summary>
    private sealed class Pass : ForwardPass
    {
        private readonly Llama _m;
        private readonly Session _s;
        private readonly KvCache[] _caches;
        private readonly TokenBatch _batch;
        private readonly AttentionBatch _attention;
        private readonly float[] _q, _k, _v, _gate, _up, _proj; // batch × rows
        private readonly Activation[] _hidden;

        public override IReadOnlyList<LayerMemory> Memory => _caches;

        public Pass(Llama m, Session s)
        {
            _m = m; _s = s;
            var c = m.Config;
            int n = s.MaxBatch;
            _caches = Enumerable.Range(0, c.Layers).Select(l => KvCache.For(s, l, m._attention)).ToArray();
            _batch = new TokenBatch(s, n, c.Dim, m._rope);
            _attention = new AttentionBatch(s, _batch, m._attention.QueryDim);
            _q = new float[n * m._attention.QueryDim];
            _k = new float[n * c.KvDim];
            _v = new float[n * c.KvDim];
            _gate = new float[n * c.HiddenDim];
            _up = new float[n * c.HiddenDim];
            _proj = new float[n * c.Dim];
            _hidden = TokenBatch.Activations(n, c.HiddenDim);
        }

        public override void Forward(ReadOnlySpan<int> tokens, int startPos)
        {
            var (m, s, b) = (_m, _s, _batch);
            var c = m.Config;
            int n = tokens.Length;
            b.Embed(m._embedding, tokens, startPos);

            for (int l = 0; l < m._layers.Length; l++)
            {
                var layer = m._layers[l];

                // Attention: x += Wo · attention(rope(Wq·norm(x)), rope(Wk·norm(x)), Wv·norm(x))
                b.RmsNorm(layer.AttnNorm, c.NormEpsilon, next: layer.Wq);
                s.MatMul(layer.Wq, b.Normed, n, _q);
                s.MatMul(layer.Wk, b.Normed, n, _k);
                s.MatMul(layer.Wv, b.Normed, n, _v);
                _attention.Run(m._attention, _caches[l], new(_q, m._attention.QueryDim, 0), new(_k, c.KvDim, 0), new(_v, c.KvDim, 0));
                s.MatMul(layer.Wo, _attention.Output, n, _proj);
                b.AddResidual(_proj);

                // Feed-forward: x += Down · (silu(Gate·norm(x)) ⊙ Up·norm(x))
                b.RmsNorm(layer.FfnNorm, c.NormEpsilon, next: layer.Gate);
                s.MatMul(layer.Gate, b.Normed, n, _gate);
                s.MatMul(layer.Up, b.Normed, n, _up);
                b.SwiGlu(_gate, _up, c.HiddenDim, _hidden, next: layer.Down);
                s.MatMul(layer.Down, _hidden, n, _proj);
                b.AddResidual(_proj);

                b.CheckFinite(l);
            }

            // Classifier: logits = Wout · norm(x), for the rows the session wants.
            var (first, count) = s.LogitRows(n);
            b.RmsNormRows(first, count, m._outputNorm.Span, c.NormEpsilon);
            if (count > 0) s.MatMul(m._output, b.Normed, count, s.Logits);
        }
    }
}
