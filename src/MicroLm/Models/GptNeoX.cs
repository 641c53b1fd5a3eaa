using MicroLm.Gguf;
using MicroLm.Generation;
using MicroLm.Math;
using MicroLm.Tensors;
using MicroLm.Tensors.Quants;
using Layer = MicroLm.Models.GptNeoXWeights<MicroLm.Tensors.WeightMatrix, System.ReadOnlyMemory<float>>.Layer;

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
    private readonly WeightMatrix _embedding, _output;
    private readonly ReadOnlyMemory<float> _outputNorm, _outputNormBias;
    private readonly Layer[] _layers;
    private readonly Rope _rope;
    private readonly AttentionOptions _attention;

    /// <summary>"gptneox.use_parallel_residual" (required, as in llama.cpp).</summary>
    public bool ParallelResidual { get; }

    public GptNeoX(GgufFile file, ModelConfig c) : base(c)
    {
        ParallelResidual = file.GetBool("gptneox.use_parallel_residual")
            ?? throw new MicroLmException("model is missing metadata key 'gptneox.use_parallel_residual'");
        var w = new GptNeoXWeights<WeightMatrix, ReadOnlyMemory<float>>(file, c, t => new WeightMatrix(file, t), (t, n) => WeightMatrix.Vector(file, t, n));
        (_embedding, _output, _outputNorm, _outputNormBias, _layers) = (w.Embedding, w.Output, w.OutputNorm, w.OutputNormBias, w.Layers);
        _rope = new Rope(c.RopeDims, c.RopeFreqBase, neoxStyle: true);
        _attention = AttentionOptions.Standard(c, _rope);
    }

    internal override ForwardPass CreatePass(Session s) => new Pass(this, s);

    /// <summary>One session's caches and scratch for batches of up to s.MaxBatch tokens.</summary>
    private sealed class Pass : ForwardPass
    {
        private readonly GptNeoX _m;
        private readonly Session _s;
        private readonly KvCache[] _caches;
        private readonly TokenBatch _batch;
        private readonly AttentionBatch _attention;
        private readonly float[] _qkv, _up, _attnProj, _ffnProj; // batch × rows
        private readonly Activation[] _hidden;
        private readonly int _qkvDim;

        public override IReadOnlyList<LayerMemory> Memory => _caches;

        public Pass(GptNeoX m, Session s)
        {
            _m = m; _s = s;
            var c = m.Config;
            int n = s.MaxBatch;
            _qkvDim = m._attention.QueryDim + 2 * c.KvDim;
            _caches = Enumerable.Range(0, c.Layers).Select(l => KvCache.For(s, l, m._attention)).ToArray();
            _batch = new TokenBatch(s, n, c.Dim, m._rope);
            _attention = new AttentionBatch(s, _batch, m._attention.QueryDim);
            _qkv = new float[n * _qkvDim];
            _up = new float[n * c.HiddenDim];
            _attnProj = new float[n * c.Dim];
            _ffnProj = new float[n * c.Dim];
            _hidden = TokenBatch.Activations(n, c.HiddenDim);
        }

        public override void Forward(ReadOnlySpan<int> tokens, int startPos)
        {
            var (m, s, b) = (_m, _s, _batch);
            var c = m.Config;
            int n = tokens.Length, qDim = m._attention.QueryDim, kvDim = c.KvDim;
            b.Embed(m._embedding, tokens, startPos);

            for (int l = 0; l < m._layers.Length; l++)
            {
                var layer = m._layers[l];

                // Attention: attnProj = Wo · attention(rope(Q), rope(K), V) + bo, with Q|K|V = Wqkv·ln1(x) + bqkv.
                b.LayerNorm(layer.AttnNorm, layer.AttnNormBias, c.NormEpsilon, next: layer.Qkv);
                s.MatMul(layer.Qkv, b.Normed, n, _qkv);
                b.AddBias(_qkv, _qkvDim, layer.QkvBias);
                _attention.Run(m._attention, _caches[l], new(_qkv, _qkvDim, 0), new(_qkv, _qkvDim, qDim), new(_qkv, _qkvDim, qDim + kvDim));
                s.MatMul(layer.Wo, _attention.Output, n, _attnProj);
                b.AddBias(_attnProj, c.Dim, layer.OutputBias);

                if (m.ParallelResidual)
                {
                    // x = (x + mlp(ln2(x))) + attn, in llama.cpp's order of additions.
                    FeedForward(layer, n);
                    b.AddResidual(_ffnProj);
                    b.AddResidual(_attnProj);
                }
                else
                {
                    // x = x + attn; x = x + mlp(ln2(x)).
                    b.AddResidual(_attnProj);
                    FeedForward(layer, n);
                    b.AddResidual(_ffnProj);
                }

                b.CheckFinite(l);
            }

            // Classifier: logits = Wout · ln_f(x), for the rows the session wants.
            var (first, count) = s.LogitRows(n);
            b.LayerNormRows(first, count, m._outputNorm.Span, m._outputNormBias.Span, c.NormEpsilon);
            if (count > 0) s.MatMul(m._output, b.Normed, count, s.Logits);
        }

        /// <summary>ffnProj = Down · gelu(Up · ln2(x) + b_up) + b_down.</summary>
        private void FeedForward(Layer layer, int n)
        {
            var (s, b) = (_s, _batch);
            var c = _m.Config;
            b.LayerNorm(layer.FfnNorm, layer.FfnNormBias, c.NormEpsilon, next: layer.Up);
            s.MatMul(layer.Up, b.Normed, n, _up);
            b.AddBias(_up, c.HiddenDim, layer.UpBias);
            b.Gelu(_up, c.HiddenDim, _hidden, next: layer.Down);
            s.MatMul(layer.Down, _hidden, n, _ffnProj);
            b.AddBias(_ffnProj, c.Dim, layer.DownBias);
        }
    }
}
