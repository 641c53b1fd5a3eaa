using MicroLm.Generation;
using MicroLm.Gguf;
using MicroLm.Math;
using MicroLm.Tensors;
using MicroLm.Tensors.Quants;

namespace MicroLm.Models;

/// <summary>Falcon-H1 (TII's hybrid-head models, Falcon-H1-Tiny): every layer runs grouped-query attention and a
/// Mamba2 mixer side by side on the same RMS-normed input, adds both outputs to the residual stream, then a
/// SwiGLU feed-forward block. Rotary embeddings on halves (x[k], x[k+d/2]) with Falcon-H1's large base.
/// Key and tensor names, the split of ssm_in's output (z | xBC | dt), the scan and the order of the additions are
/// llama.cpp's (llm_build_falcon_h1, build_mamba2_layer, ggml_ssm_conv, ggml_ssm_scan); its converter has already
/// folded the checkpoint's multipliers into the weights and written A = −exp(A_log).</summary>
public sealed class FalconH1 : Architecture
{
    private sealed class Layer
    {
        public required ReadOnlyMemory<float> AttnNorm, FfnNorm;
        public required WeightMatrix Wq, Wk, Wv, Wo, Gate, Up, Down;
        // Mamba2 mixer
        public required WeightMatrix SsmIn, SsmOut;
        public required ReadOnlyMemory<float> ConvWeight, ConvBias, DtBias, A, D;
        public required ReadOnlyMemory<float>? SsmNorm;
    }

    private readonly WeightMatrix _embedding, _output;
    private readonly ReadOnlyMemory<float> _outputNorm;
    private readonly Layer[] _layers;
    private readonly Rope _rope;
    internal Mamba2Shape Ssm { get; }

    public FalconH1(GgufFile file, ModelConfig c) : base(c)
    {
        Ssm = ReadShape(file, c);
        var s = Ssm;
        int qDim = c.Heads * c.HeadDim;
        ReadOnlyMemory<float> Vec(GgufTensorInfo t, int n) => WeightMatrix.Vector(file, t, n);
        _embedding = new WeightMatrix(file, Tensor(file, "token_embd.weight", c.Dim, c.VocabSize));
        _output = file.FindTensor("output.weight") is { }
            ? new WeightMatrix(file, Tensor(file, "output.weight", c.Dim, c.VocabSize))
            : _embedding; // tied classifier, as llama.cpp duplicates token_embd
        _outputNorm = Vec(Tensor(file, "output_norm.weight", c.Dim), c.Dim);
        string sizes = $"(ssm.inner_size {s.Inner}, ssm.state_size {s.State}, ssm.group_count {s.Groups}, ssm.time_step_rank {s.Heads}, ssm.conv_kernel {s.ConvKernel})";
        _layers = new Layer[c.Layers];
        for (int i = 0; i < c.Layers; i++)
        {
            string p = $"blk.{i}.";
            GgufTensorInfo Ssm(string name, params long[] shape) => SsmTensor(file, p + name, sizes, shape);
            _layers[i] = new Layer
            {
                AttnNorm = Vec(Tensor(file, p + "attn_norm.weight", c.Dim), c.Dim),
                Wq = new WeightMatrix(file, Tensor(file, p + "attn_q.weight", c.Dim, qDim)),
                Wk = new WeightMatrix(file, Tensor(file, p + "attn_k.weight", c.Dim, c.KvDim)),
                Wv = new WeightMatrix(file, Tensor(file, p + "attn_v.weight", c.Dim, c.KvDim)),
                Wo = new WeightMatrix(file, Tensor(file, p + "attn_output.weight", qDim, c.Dim)),
                SsmIn = new WeightMatrix(file, Ssm("ssm_in", c.Dim, s.Projection)),
                ConvWeight = Vec(Ssm("ssm_conv1d", s.ConvKernel, s.ConvChannels), s.ConvKernel * s.ConvChannels),
                ConvBias = Vec(Ssm("ssm_conv1d.bias", s.ConvChannels), s.ConvChannels),
                DtBias = Vec(Ssm("ssm_dt.bias", s.Heads), s.Heads),
                A = Vec(Ssm("ssm_a", 1, s.Heads), s.Heads),
                D = Vec(Ssm("ssm_d", 1, s.Heads), s.Heads),
                SsmNorm = FindEither(file, p + "ssm_norm") is null ? (ReadOnlyMemory<float>?)null : Vec(Ssm("ssm_norm", s.GroupSize, s.Groups), s.Inner),
                SsmOut = new WeightMatrix(file, Ssm("ssm_out", s.Inner, c.Dim)),
                FfnNorm = Vec(Either(file, p + "ffn_norm", c.Dim), c.Dim),
                Gate = new WeightMatrix(file, Tensor(file, p + "ffn_gate.weight", c.Dim, c.HiddenDim)),
                Up = new WeightMatrix(file, Tensor(file, p + "ffn_up.weight", c.Dim, c.HiddenDim)),
                Down = new WeightMatrix(file, Tensor(file, p + "ffn_down.weight", c.HiddenDim, c.Dim)),
            };
        }
        _rope = new Rope(c.RopeDims, c.RopeFreqBase, neoxStyle: true);
    }

    /// <summary>The mixer's sizes from "falcon-h1.ssm.*", checked against each other and the model.</summary>
    internal static Mamba2Shape ReadShape(GgufFile file, ModelConfig c)
    {
        string arch = c.Architecture;
        int Req(string key, int max)
        {
            long v = file.GetInt($"{arch}.{key}") ?? throw new MicroLmException($"model is missing metadata key '{arch}.{key}'");
            if (v <= 0 || v > max) throw new MicroLmException($"metadata '{arch}.{key}' = {v} is out of range (1..{max})");
            return (int)v;
        }
        var s = new Mamba2Shape(Req("ssm.conv_kernel", 64), Req("ssm.inner_size", 1 << 20), Req("ssm.state_size", 1 << 16),
            Req("ssm.time_step_rank", 1 << 16), Req("ssm.group_count", 1 << 16));
        if (s.Inner % s.Heads != 0)
            throw new MicroLmException($"ssm.inner_size {s.Inner} is not a multiple of the SSM head count (ssm.time_step_rank) {s.Heads}");
        if (s.Heads % s.Groups != 0)
            throw new MicroLmException($"the SSM head count (ssm.time_step_rank) {s.Heads} is not a multiple of ssm.group_count {s.Groups}");
        return s;
    }

    /// <summary>A Mamba2 tensor by llama.cpp's name, with or without ".weight" (ssm_a and ssm_d have none; converters
    /// differ), its shape checked against the ssm.* sizes (1-sized dimensions ignored, as ggml broadcasts them).</summary>
    private static GgufTensorInfo SsmTensor(GgufFile file, string name, string sizes, long[] shape)
    {
        var t = FindEither(file, name) ?? throw new MicroLmException($"model is missing tensor '{name}{(name.EndsWith(".bias") || name.EndsWith("ssm_a") || name.EndsWith("ssm_d") ? "" : ".weight")}'");
        var actual = t.Shape.Where(d => d != 1).ToArray();
        var expected = shape.Where(d => d != 1).ToArray();
        if (!actual.SequenceEqual(expected))
            throw new MicroLmException($"tensor '{t.Name}' has shape {t.ShapeText}, expected [{string.Join(", ", shape)}] {sizes}");
        return t;
    }

    private static GgufTensorInfo Either(GgufFile file, string name, params long[] shape) =>
        FindEither(file, name) is { } t ? Tensor(file, t.Name, shape) : throw new MicroLmException($"model is missing tensor '{name}.weight'");

    private static GgufTensorInfo? FindEither(GgufFile file, string name) =>
        file.FindTensor(name) ?? (name.EndsWith(".bias") ? null : file.FindTensor(name + ".weight"));

    private sealed class Scratch(Session s, int maxBatch, WeightMatrix embedding, Rope rope) : TokenBatch(s, maxBatch, embedding, rope)
    {
        public required Activation[] Hidden, SsmY;
        public required float[] Q, K, V, AttnProj, Proj, Conv, Y, SsmProj, Gate, Up, FfnProj; // batch × rows
        public required Mamba2State[] States;
        public int Count;
        // Per-token steps (see TokenBatch) and the mixer's thread parts, made once in CreateScratch.
        public Action<int> AttnNorm = null!, RopeAndStore = null!, MixerResidual = null!, FfnNorm = null!, Gating = null!, FfnResidual = null!, SsmNorm = null!;
        public Action<int, int> Convolve = null!, Scan = null!;
    }

    internal override object CreateScratch(Session s, int maxBatch)
    {
        var c = Config;
        var m = Ssm;
        int dim = c.Dim, qDim = c.Heads * c.HeadDim, kvDim = c.KvDim, hidden = c.HiddenDim, half = c.RopeDims / 2;
        var w = new Scratch(s, maxBatch, _embedding, _rope)
        {
            Hidden = TokenBatch.Activations(maxBatch, hidden),
            SsmY = TokenBatch.Activations(maxBatch, m.Inner),
            Q = new float[maxBatch * qDim], K = new float[maxBatch * kvDim], V = new float[maxBatch * kvDim],
            AttnProj = new float[maxBatch * dim], Proj = new float[maxBatch * m.Projection], Conv = new float[maxBatch * m.ConvChannels],
            Y = new float[maxBatch * m.Inner], SsmProj = new float[maxBatch * dim],
            Gate = new float[maxBatch * hidden], Up = new float[maxBatch * hidden], FfnProj = new float[maxBatch * dim],
            States = Enumerable.Range(0, c.Layers).Select(_ => new Mamba2State(m)).ToArray(),
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
        // Channels (convolution) and heads (scan) split across the team: each owned by one thread, tokens in order.
        w.Convolve = (part, parts) =>
        {
            var layer = _layers[w.Layer];
            var (c0, c1) = ThreadTeam.Slice(m.ConvChannels, part, parts);
            Mamba2.Convolve(m, w.States[w.Layer], layer.ConvWeight.Span, layer.ConvBias.Span, w.Proj, m.Projection, m.Inner, w.Count, w.Conv, c0, c1);
        };
        w.Scan = (part, parts) =>
        {
            var layer = _layers[w.Layer];
            var (h0, h1) = ThreadTeam.Slice(m.Heads, part, parts);
            Mamba2.Scan(m, w.States[w.Layer], layer.A.Span, layer.D.Span, layer.DtBias.Span, w.Conv, w.Proj, m.Projection,
                m.Inner + m.ConvChannels, w.Count, w.Y, h0, h1);
        };
        w.SsmNorm = t =>
        {
            var y = Row(w.Y, t, m.Inner);
            if (_layers[w.Layer].SsmNorm is { } norm) Mamba2.GroupNorm(m, y, norm.Span, c.NormEpsilon);
            y.CopyTo(w.SsmY[t].Span);
            w.SsmY[t].Invalidate();
        };
        // x = (attention + mixer) + x, in llama.cpp's order of additions.
        w.MixerResidual = t =>
        {
            var attn = Row(w.AttnProj, t, dim);
            Kernels.Add(attn, Row(w.SsmProj, t, dim));
            Kernels.Add(Row(w.X, t, dim), attn);
        };
        w.FfnNorm = t => w.RmsNorm(t, t, _layers[w.Layer].FfnNorm.Span, c.NormEpsilon);
        w.Gating = t =>
        {
            var h = w.Hidden[t].Span;
            DetMath.Silu(Row(w.Gate, t, hidden), h);
            var up = Row(w.Up, t, hidden);
            for (int i = 0; i < hidden; i++) h[i] *= up[i];
            w.Hidden[t].Invalidate();
        };
        w.FfnResidual = t => Kernels.Add(Row(w.X, t, dim), Row(w.FfnProj, t, dim));
        return w;
    }

    internal override void Forward(Session s, ReadOnlySpan<int> tokens, int startPos)
    {
        var c = Config;
        var w = (Scratch)s.Scratch;
        int n = tokens.Length, dim = c.Dim;
        if (startPos == 0) foreach (var state in w.States) state.Reset(); // a new sequence starts from zero state
        w.Begin(s, tokens, startPos);
        w.Count = n;

        for (int l = 0; l < _layers.Length; l++)
        {
            var layer = _layers[l];
            w.Layer = l;
            s.ForEachToken(n, w.AttnNorm); // one normed input for both mixers

            // Attention: AttnProj = Wo · attention(rope(Wq·h), rope(Wk·h), Wv·h)
            s.MatMul(layer.Wq, w.Normed, n, w.Q);
            s.MatMul(layer.Wk, w.Normed, n, w.K);
            s.MatMul(layer.Wv, w.Normed, n, w.V);
            s.ForEachToken(n, w.RopeAndStore);
            w.Attention.Run(l, startPos, n, w.Q, c.Heads * c.HeadDim, 0);
            s.MatMul(layer.Wo, w.Attention.Output, n, w.AttnProj);

            // Mamba2: z | xBC | dt = SsmIn·h; xBC = silu(conv(xBC) + b); y = scan(x, Δ, A, B, C) + D·x, gated by silu(z)
            s.MatMul(layer.SsmIn, w.Normed, n, w.Proj);
            s.Team.Run(w.Convolve);
            s.Team.Run(w.Scan);
            s.ForEachToken(n, w.SsmNorm); // grouped RMSNorm when the model has one
            s.MatMul(layer.SsmOut, w.SsmY, n, w.SsmProj);

            s.ForEachToken(n, w.MixerResidual); // x += attention + mixer

            // Feed-forward: x += Down · (silu(Gate·norm(x)) ⊙ Up·norm(x))
            s.ForEachToken(n, w.FfnNorm);
            s.MatMul(layer.Gate, w.Normed, n, w.Gate);
            s.MatMul(layer.Up, w.Normed, n, w.Up);
            s.ForEachToken(n, w.Gating);
            s.MatMul(layer.Down, w.Hidden, n, w.FfnProj);
            s.ForEachToken(n, w.FfnResidual);
            s.CheckFinite(w.X.AsSpan(0, n * dim), l);
        }

        var (first, count) = s.LogitRows(n);
        for (int t = 0; t < count; t++) w.RmsNorm(first + t, t, _outputNorm.Span, c.NormEpsilon);
        if (count > 0) s.MatMul(_output, w.Normed, count, s.Logits);
    }
}
