using MicroLm.Generation;
using MicroLm.Gguf;
using MicroLm.Models;
using Layer = MicroLm.Models.GptNeoXWeights<MicroLm.FixedPoint.FixedMatrix, int[]>.Layer;

namespace MicroLm.FixedPoint;

/// <summary>GPT-NeoX (Pythia) in fixed point: the steps of <see cref="GptNeoX"/> (LayerNorm with bias,
/// fused QKV with bias, rotary embeddings on halves over the first rope.dimension_count values, biased
/// output and feed-forward projections with GELU in its tanh form, parallel or sequential residual),
/// every one in integers; only the logits become floats, exactly, at the end.</summary>
internal sealed class FixedGptNeoX : Architecture
{
    private readonly FixedMatrix _embedding, _output;
    private readonly int[] _outputNorm, _outputNormBias;
    private readonly Layer[] _layers;
    private readonly FixedRope _rope;
    private readonly FixedAttentionOptions _attention;
    private readonly UInt128 _eps;
    private readonly bool _parallelResidual;

    public FixedGptNeoX(GgufFile file, ModelConfig c, uint epsBits, uint ropeBaseBits) : base(c)
    {
        _parallelResidual = file.GetBool("gptneox.use_parallel_residual")
            ?? throw new MicroLmException("model is missing metadata key 'gptneox.use_parallel_residual'");
        var w = new GptNeoXWeights<FixedMatrix, int[]>(file, c, t => new FixedMatrix(file, t), (t, n) => FixedMatrix.Vector(file, t, n));
        (_embedding, _output, _outputNorm, _outputNormBias, _layers) = (w.Embedding, w.Output, w.OutputNorm, w.OutputNormBias, w.Layers);
        _rope = new FixedRope(c.RopeDims, ropeBaseBits, neoxStyle: true);
        _attention = FixedAttentionOptions.Standard(c, _rope);
        _eps = FixedNorm.Epsilon(epsBits);
    }

    internal override ForwardPass CreatePass(Session s) => new Pass(this, s);

    private sealed class Pass : ForwardPass, IFixedPass
    {
        private readonly FixedGptNeoX _m;
        private readonly Session _s;
        private readonly FixedKvCache[] _caches;
        private readonly FixedBatch _batch;
        private readonly FixedAttentionBatch _attention;
        private readonly int[] _qkv, _up, _hidden, _attnProj, _ffnProj, _logits; // batch × rows
        private readonly int _qkvWidth;

        public override IReadOnlyList<LayerMemory> Memory => _caches;
        public FixedBatch Batch => _batch;

        public Pass(FixedGptNeoX m, Session s)
        {
            FixedBackend.RequireOwnCache(s);
            _m = m; _s = s;
            var c = m.Config;
            int n = s.MaxBatch;
            _qkvWidth = m._attention.QueryDim + 2 * c.KvDim;
            _caches = Enumerable.Range(0, c.Layers).Select(l => new FixedKvCache(l, m._attention, s.ContextLength)).ToArray();
            _batch = new FixedBatch(s, n, c.Dim, m._rope);
            _attention = new FixedAttentionBatch(s, _batch, m._attention.QueryDim, c.HeadDim);
            _qkv = new int[n * _qkvWidth];
            _up = new int[n * c.HiddenDim];
            _hidden = new int[n * c.HiddenDim];
            _attnProj = new int[n * c.Dim];
            _ffnProj = new int[n * c.Dim];
            _logits = new int[n * c.VocabSize];
            _batch.Name("qkv", _qkv, _qkvWidth); _batch.Name("ffn up", _up, c.HiddenDim); _batch.Name("ffn hidden", _hidden, c.HiddenDim);
            _batch.Name("attention projection", _attnProj, c.Dim); _batch.Name("ffn projection", _ffnProj, c.Dim);
            _batch.Name("logits", _logits, c.VocabSize);
        }

        public override void Forward(ReadOnlySpan<int> tokens, int startPos)
        {
            var (m, s, b) = (_m, _s, _batch);
            var c = m.Config;
            int qDim = m._attention.QueryDim;
            b.Embed(m._embedding, tokens, startPos);

            for (int l = 0; l < m._layers.Length; l++)
            {
                var layer = m._layers[l];

                // Attention: proj = Wo · attention(rope(Q), rope(K), V) + bo, with Q|K|V = Wqkv·ln1(x) + bqkv.
                b.LayerNorm(layer.AttnNorm, layer.AttnNormBias, m._eps);
                b.MatMul(layer.Qkv, b.Normed, _qkv);
                b.AddBias(_qkv, _qkvWidth, layer.QkvBias);
                _attention.Run(m._attention, _caches[l], new(_qkv, _qkvWidth, 0), new(_qkv, _qkvWidth, qDim), new(_qkv, _qkvWidth, qDim + c.KvDim));
                b.MatMul(layer.Wo, _attention.Output, _attnProj);
                b.AddBias(_attnProj, c.Dim, layer.OutputBias);

                if (m._parallelResidual)
                {
                    // x = (x + mlp(ln2(x))) + attn, in llama.cpp's order of additions.
                    FeedForward(layer);
                    b.AddResidual(_ffnProj);
                    b.AddResidual(_attnProj);
                }
                else
                {
                    // x = x + attn; x = x + mlp(ln2(x)).
                    b.AddResidual(_attnProj);
                    FeedForward(layer);
                    b.AddResidual(_ffnProj);
                }
                b.CheckRange($"layer {l}");
            }

            var (first, count) = s.LogitRows(tokens.Length);
            if (count == 0) return;
            b.LayerNormRows(first, count, m._outputNorm, m._outputNormBias, m._eps);
            b.MatMul(m._output, b.Normed, count, _logits);
            b.CheckRange("the classifier");
            FixedLogits.ToFloat32(_logits.AsSpan(0, count * c.VocabSize), s);
        }

        /// <summary>ffnProj = Down · gelu(Up · ln2(x) + b_up) + b_down.</summary>
        private void FeedForward(Layer layer)
        {
            var (m, b) = (_m, _batch);
            var c = m.Config;
            b.LayerNorm(layer.FfnNorm, layer.FfnNormBias, m._eps);
            b.MatMul(layer.Up, b.Normed, _up);
            b.AddBias(_up, c.HiddenDim, layer.UpBias);
            b.Gelu(_up, c.HiddenDim, _hidden);
            b.MatMul(layer.Down, _hidden, _ffnProj);
            b.AddBias(_ffnProj, c.Dim, layer.DownBias);
        }
    }
}
