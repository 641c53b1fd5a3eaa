using MicroLm.Generation;
using MicroLm.Gguf;
using MicroLm.Tensors;
using MicroLm.Tensors.Quants;

namespace MicroLm.Models;

/// <summary>GPT-Neo (TinyStories-1M/33M): learned absolute position embeddings added to the token
/// embeddings; pre-norm blocks with LayerNorm (weight and bias); q, k, v projections without bias and
/// an output projection with bias; attention scores NOT scaled by 1/√d (GPT-Neo computes q·k as is);
/// layers alternating global attention (every earlier position) and local attention (the token and the
/// window − 1 before it), as the model's attention types say; a feed-forward network with biases and GELU
/// in its tanh form; a final LayerNorm and the token embeddings as classifier (tied) unless output.weight
/// is present. llama.cpp has no GPT-Neo, so the keys and tensor names are ours (docs/gguf-gptneo.md).</summary>
internal sealed class GptNeo : Architecture
{
    private sealed class Layer
    {
        public required ReadOnlyMemory<float> AttnNorm, AttnNormBias, OutputBias, FfnNorm, FfnNormBias, UpBias, DownBias;
        public required WeightMatrix Wq, Wk, Wv, Wo, Up, Down;
        public required AttentionOptions Attention;
    }

    private readonly WeightMatrix _embedding, _positions, _output;
    private readonly ReadOnlyMemory<float> _outputNorm, _outputNormBias;
    private readonly Layer[] _layers;

    public GptNeo(GgufFile file, ModelConfig c) : base(c)
    {
        int qDim = c.Heads * c.HeadDim;
        ReadOnlyMemory<float> Vec(string name, int n) => WeightMatrix.Vector(file, Tensor(file, name, n), n);
        _embedding = new WeightMatrix(file, Tensor(file, "token_embd.weight", c.Dim, c.VocabSize));
        _positions = new WeightMatrix(file, Tensor(file, "position_embd.weight", c.Dim, c.ContextLength));
        _output = file.FindTensor("output.weight") is not null
            ? new WeightMatrix(file, Tensor(file, "output.weight", c.Dim, c.VocabSize))
            : _embedding; // tied classifier (GPT-Neo's lm_head is wte)
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
                Wq = new WeightMatrix(file, Tensor(file, p + "attn_q.weight", c.Dim, qDim)),
                Wk = new WeightMatrix(file, Tensor(file, p + "attn_k.weight", c.Dim, c.KvDim)),
                Wv = new WeightMatrix(file, Tensor(file, p + "attn_v.weight", c.Dim, c.KvDim)),
                Wo = new WeightMatrix(file, Tensor(file, p + "attn_output.weight", qDim, c.Dim)),
                OutputBias = Vec(p + "attn_output.bias", c.Dim),
                FfnNorm = Vec(p + "ffn_norm.weight", c.Dim),
                FfnNormBias = Vec(p + "ffn_norm.bias", c.Dim),
                Up = new WeightMatrix(file, Tensor(file, p + "ffn_up.weight", c.Dim, c.HiddenDim)),
                UpBias = Vec(p + "ffn_up.bias", c.HiddenDim),
                Down = new WeightMatrix(file, Tensor(file, p + "ffn_down.weight", c.HiddenDim, c.Dim)),
                DownBias = Vec(p + "ffn_down.bias", c.Dim),
                // No rotary embedding, no 1/√d: scores are q·k as GPT-Neo computes them.
                Attention = new AttentionOptions(c.Heads, c.KvHeads, c.HeadDim, Scale: 1f, Window: c.AttentionWindow(i), Rope: null),
            };
        }
    }

    internal override ForwardPass CreatePass(Session s) => new Pass(this, s);

    /// <summary>One session's caches (full for global layers, a sliding window for local ones) and scratch.</summary>
    private sealed class Pass : ForwardPass
    {
        private readonly GptNeo _m;
        private readonly Session _s;
        private readonly KvCache[] _caches;
        private readonly TokenBatch _batch;
        private readonly AttentionBatch _attention;
        private readonly float[] _q, _k, _v, _up, _proj; // batch × rows
        private readonly Activation[] _hidden;

        public override IReadOnlyList<LayerMemory> Memory => _caches;

        public Pass(GptNeo m, Session s)
        {
            _m = m; _s = s;
            var c = m.Config;
            int n = s.MaxBatch, qDim = c.Heads * c.HeadDim;
            _caches = Enumerable.Range(0, c.Layers).Select(l => KvCache.For(s, l, m._layers[l].Attention)).ToArray();
            _batch = new TokenBatch(s, n, c.Dim, rope: null, positionEmbeddings: true);
            _attention = new AttentionBatch(s, _batch, qDim);
            _q = new float[n * qDim];
            _k = new float[n * c.KvDim];
            _v = new float[n * c.KvDim];
            _up = new float[n * c.HiddenDim];
            _proj = new float[n * c.Dim];
            _hidden = TokenBatch.Activations(n, c.HiddenDim);
        }

        public override void Forward(ReadOnlySpan<int> tokens, int startPos)
        {
            var (m, s, b) = (_m, _s, _batch);
            var c = m.Config;
            int n = tokens.Length, qDim = c.Heads * c.HeadDim;
            if (startPos + n > c.ContextLength)
                throw new MicroLmException($"position {startPos + n - 1} is past the {c.ContextLength} positions GPT-Neo learned embeddings for");

            // x = wte[token] + wpe[position]
            b.Embed(m._embedding, tokens, startPos);
            b.AddPositionEmbedding(m._positions);

            for (int l = 0; l < m._layers.Length; l++)
            {
                var layer = m._layers[l];

                // Attention (global or local): x += Wo · attention(Wq·ln1(x), Wk·ln1(x), Wv·ln1(x)) + bo
                b.LayerNorm(layer.AttnNorm, layer.AttnNormBias, c.NormEpsilon, next: layer.Wq);
                s.MatMul(layer.Wq, b.Normed, n, _q);
                s.MatMul(layer.Wk, b.Normed, n, _k);
                s.MatMul(layer.Wv, b.Normed, n, _v);
                _attention.Run(layer.Attention, _caches[l], new(_q, qDim, 0), new(_k, c.KvDim, 0), new(_v, c.KvDim, 0));
                s.MatMul(layer.Wo, _attention.Output, n, _proj);
                b.AddBias(_proj, c.Dim, layer.OutputBias);
                b.AddResidual(_proj);

                // Feed-forward: x += Down · gelu(Up · ln2(x) + b_up) + b_down
                b.LayerNorm(layer.FfnNorm, layer.FfnNormBias, c.NormEpsilon, next: layer.Up);
                s.MatMul(layer.Up, b.Normed, n, _up);
                b.AddBias(_up, c.HiddenDim, layer.UpBias);
                b.Gelu(_up, c.HiddenDim, _hidden, next: layer.Down);
                s.MatMul(layer.Down, _hidden, n, _proj);
                b.AddBias(_proj, c.Dim, layer.DownBias);
                b.AddResidual(_proj);

                b.CheckFinite(l);
            }

            // Classifier: logits = wte · ln_f(x), for the rows the session wants.
            var (first, count) = s.LogitRows(n);
            b.LayerNormRows(first, count, m._outputNorm.Span, m._outputNormBias.Span, c.NormEpsilon);
            if (count > 0) s.MatMul(m._output, b.Normed, count, s.Logits);
        }
    }
}
