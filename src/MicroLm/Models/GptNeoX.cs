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
public sealed class GptNeoX : Architecture
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

    private sealed class Scratch
    {
        public required float[] X;                 // residual stream, batch × dim
        public required Activation[] Normed, Hidden;
        public required float[] Qkv, Up, AttnProj, FfnProj; // batch × rows
        public required float[] Cos, Sin;          // batch × rope pairs
        public required AttentionBatch Attention;
    }

    internal override object CreateScratch(Session s, int maxBatch)
    {
        var c = Config;
        int qkv = c.Heads * c.HeadDim + 2 * c.KvDim;
        Activation[] Acts(int n) => Enumerable.Range(0, maxBatch).Select(_ => new Activation(n)).ToArray();
        return new Scratch
        {
            X = new float[maxBatch * c.Dim],
            Normed = Acts(c.Dim), Hidden = Acts(c.HiddenDim),
            Qkv = new float[maxBatch * qkv], Up = new float[maxBatch * c.HiddenDim],
            AttnProj = new float[maxBatch * c.Dim], FfnProj = new float[maxBatch * c.Dim],
            Cos = new float[maxBatch * c.RopeDims / 2], Sin = new float[maxBatch * c.RopeDims / 2],
            Attention = new AttentionBatch(s, maxBatch),
        };
    }

    internal override void Forward(Session s, ReadOnlySpan<int> tokens, int startPos)
    {
        var c = Config;
        var w = (Scratch)s.Scratch;
        int n = tokens.Length, dim = c.Dim, half = c.RopeDims / 2;
        int qDim = c.Heads * c.HeadDim, kvDim = c.KvDim, qkv = qDim + 2 * kvDim;
        var x = w.X.AsSpan(0, n * dim);

        for (int t = 0; t < n; t++)
        {
            _embedding.ReadRow(tokens[t], w.X.AsSpan(t * dim, dim));
            _rope.Angles(startPos + t, w.Cos.AsSpan(t * half, half), w.Sin.AsSpan(t * half, half));
        }

        for (int l = 0; l < _layers.Length; l++)
        {
            var layer = _layers[l];
            // Attention: proj = Wo · attention(rope(Q), rope(K), V) + bo, with Q|K|V = Wqkv·ln1(x) + bqkv.
            BatchOps.LayerNorm(w.X, dim, layer.AttnNorm.Span, layer.AttnNormBias.Span, c.NormEpsilon, w.Normed, n);
            s.MatMul(layer.Qkv, w.Normed, n, w.Qkv);
            BatchOps.AddBias(w.Qkv, layer.QkvBias.Span, n);
            for (int t = 0; t < n; t++)
            {
                var row = w.Qkv.AsSpan(t * qkv, qkv);
                var cos = w.Cos.AsSpan(t * half, half); var sin = w.Sin.AsSpan(t * half, half);
                _rope.Apply(row[..qDim], c.Heads, c.HeadDim, cos, sin);
                _rope.Apply(row.Slice(qDim, kvDim), c.KvHeads, c.HeadDim, cos, sin);
                Attention.Store(s, l, startPos + t, row.Slice(qDim, kvDim), row.Slice(qDim + kvDim, kvDim));
            }
            w.Attention.Run(l, startPos, n, w.Qkv, qkv, 0);
            s.MatMul(layer.Wo, w.Attention.Output, n, w.AttnProj);
            BatchOps.AddBias(w.AttnProj, layer.OutputBias.Span, n);

            if (ParallelResidual)
            {
                // x = (x + mlp(ln2(x))) + attn, in llama.cpp's order of additions.
                FeedForward(s, w, layer, n);
                Kernels.Add(x, w.FfnProj.AsSpan(0, n * dim));
                Kernels.Add(x, w.AttnProj.AsSpan(0, n * dim));
            }
            else
            {
                // x = x + attn; x = x + mlp(ln2(x)).
                Kernels.Add(x, w.AttnProj.AsSpan(0, n * dim));
                FeedForward(s, w, layer, n);
                Kernels.Add(x, w.FfnProj.AsSpan(0, n * dim));
            }
            s.CheckFinite(x, l);
        }

        var (first, count) = s.LogitRows(n);
        BatchOps.LayerNorm(w.X, dim, _outputNorm.Span, _outputNormBias.Span, c.NormEpsilon, w.Normed, count, first);
        if (count > 0) s.MatMul(_output, w.Normed, count, s.Logits);
    }

    /// <summary>FfnProj = Down · gelu(Up · ln2(x) + b_up) + b_down.</summary>
    private void FeedForward(Session s, Scratch w, Layer layer, int n)
    {
        var c = Config;
        int hidden = c.HiddenDim;
        BatchOps.LayerNorm(w.X, c.Dim, layer.FfnNorm.Span, layer.FfnNormBias.Span, c.NormEpsilon, w.Normed, n);
        s.MatMul(layer.Up, w.Normed, n, w.Up);
        BatchOps.AddBias(w.Up, layer.UpBias.Span, n);
        for (int t = 0; t < n; t++)
        {
            DetMath.GeluTanh(w.Up.AsSpan(t * hidden, hidden), w.Hidden[t].Span);
            w.Hidden[t].Invalidate();
        }
        s.MatMul(layer.Down, w.Hidden, n, w.FfnProj);
        BatchOps.AddBias(w.FfnProj, layer.DownBias.Span, n);
    }
}
