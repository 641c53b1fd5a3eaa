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
internal sealed class FalconH1 : Architecture
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
    private readonly AttentionOptions _attention;
    internal Mamba2Shape Ssm { get; }

    public FalconH1(GgufFile file, ModelConfig c) : base(c)
    {
        Ssm = ReadShape(file, c.Architecture);
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
        _attention = AttentionOptions.Standard(c, _rope);
    }

    /// <summary>The mixer's sizes from "falcon-h1.ssm.*", checked against each other and the model.</summary>
    internal static Mamba2Shape ReadShape(GgufFile file, string arch)
    {
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

    internal override ForwardPass CreatePass(Session s) => new Pass(this, s);

    /// <summary>One session's memory — per layer its attention KV cache and its Mamba2 state (convolution window
    /// and SSM state) — and the scratch for batches of up to s.MaxBatch tokens.</summary>
    private sealed class Pass : ForwardPass
    {
        private readonly FalconH1 _m;
        private readonly Session _s;
        private readonly KvCache[] _caches;
        private readonly RecurrentState[] _states;
        private readonly LayerMemory[] _memory;
        private readonly TokenBatch _batch;
        private readonly AttentionBatch _attention;
        private readonly float[] _q, _k, _v, _attnProj, _zxbcdt, _xbc, _y, _ssmProj, _gate, _up, _ffnProj; // batch × rows
        private readonly Activation[] _gated, _hidden;
        // The mixer's steps (made once) and the layer they work on.
        private readonly Action<int, int> _convolve, _scan;
        private readonly Action<int> _groupNorm, _sumMixers;
        private Layer _layer = null!;
        private RecurrentState _state = null!;

        public override IReadOnlyList<LayerMemory> Memory => _memory;

        public Pass(FalconH1 m, Session s)
        {
            _m = m; _s = s;
            var c = m.Config;
            var ssm = m.Ssm;
            int n = s.MaxBatch;
            _caches = Enumerable.Range(0, c.Layers).Select(l => KvCache.For(s, l, m._attention)).ToArray();
            _states = Enumerable.Range(0, c.Layers).Select(ssm.NewState).ToArray();
            _memory = Enumerable.Range(0, c.Layers).SelectMany(l => new LayerMemory[] { _caches[l], _states[l] }).ToArray();
            _batch = new TokenBatch(s, n, c.Dim, m._rope);
            _attention = new AttentionBatch(s, _batch, m._attention.QueryDim);
            _q = new float[n * m._attention.QueryDim];
            _k = new float[n * c.KvDim];
            _v = new float[n * c.KvDim];
            _attnProj = new float[n * c.Dim];
            _zxbcdt = new float[n * ssm.Projection];
            _xbc = new float[n * ssm.ConvChannels];
            _y = new float[n * ssm.Inner];
            _gated = TokenBatch.Activations(n, ssm.Inner);
            _ssmProj = new float[n * c.Dim];
            _gate = new float[n * c.HiddenDim];
            _up = new float[n * c.HiddenDim];
            _ffnProj = new float[n * c.Dim];
            _hidden = TokenBatch.Activations(n, c.HiddenDim);
            // Channels (convolution) and heads (scan) split across the team: each owned by one thread, which
            // walks the batch's tokens in order.
            _convolve = (part, parts) =>
            {
                var (c0, c1) = ThreadTeam.Slice(ssm.ConvChannels, part, parts);
                Mamba2.Convolve(ssm, _state, _layer.ConvWeight.Span, _layer.ConvBias.Span, _zxbcdt, ssm.Projection, ssm.Inner, _batch.Count, _xbc, c0, c1);
            };
            _scan = (part, parts) =>
            {
                var (h0, h1) = ThreadTeam.Slice(ssm.Heads, part, parts);
                Mamba2.Scan(ssm, _state, _layer.A.Span, _layer.D.Span, _layer.DtBias.Span, _xbc, _zxbcdt, ssm.Projection,
                    ssm.Inner + ssm.ConvChannels, _batch.Count, _y, h0, h1);
            };
            _groupNorm = t =>
            {
                var y = TokenBatch.Row(_y, t, ssm.Inner);
                if (_layer.SsmNorm is { } norm) Mamba2.GroupNorm(ssm, y, norm.Span, c.NormEpsilon);
                y.CopyTo(_gated[t].Values);
                _gated[t].Invalidate();
                WeightMatrix.Prepare(_layer.SsmOut, _gated, t, t + 1); // SsmOut's activation form, by the thread that wrote the row
            };
            _sumMixers = t => Kernels.Add(TokenBatch.Row(_attnProj, t, c.Dim), TokenBatch.Row(_ssmProj, t, c.Dim));
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
                b.RmsNorm(layer.AttnNorm, c.NormEpsilon, next: layer.Wq); // one normed input h for both mixers

                // Attention: attnProj = Wo · attention(rope(Wq·h), rope(Wk·h), Wv·h)
                s.MatMul(layer.Wq, b.Normed, n, _q);
                s.MatMul(layer.Wk, b.Normed, n, _k);
                s.MatMul(layer.Wv, b.Normed, n, _v);
                _attention.Run(m._attention, _caches[l], new(_q, m._attention.QueryDim, 0), new(_k, c.KvDim, 0), new(_v, c.KvDim, 0));
                s.MatMul(layer.Wo, _attention.Output, n, _attnProj);

                // Mamba2: ssmProj = SsmOut · norm(scan(silu(conv(xBC))) ⊙ silu(z)), with z | xBC | dt = SsmIn·h
                s.MatMul(layer.SsmIn, b.Normed, n, _zxbcdt);
                Mixer(layer, _states[l]);
                s.MatMul(layer.SsmOut, _gated, n, _ssmProj);

                // x = (attention + mixer) + x, in llama.cpp's order of additions.
                s.ForEachToken(n, _sumMixers);
                b.AddResidual(_attnProj);

                // Feed-forward: x += Down · (silu(Gate·norm(x)) ⊙ Up·norm(x))
                b.RmsNorm(layer.FfnNorm, c.NormEpsilon, next: layer.Gate);
                s.MatMul(layer.Gate, b.Normed, n, _gate);
                s.MatMul(layer.Up, b.Normed, n, _up);
                b.SwiGlu(_gate, _up, c.HiddenDim, _hidden, next: layer.Down);
                s.MatMul(layer.Down, _hidden, n, _ffnProj);
                b.AddResidual(_ffnProj);

                b.CheckFinite(l);
            }

            // Classifier: logits = Wout · norm(x), for the rows the session wants.
            var (first, count) = s.LogitRows(n);
            b.RmsNormRows(first, count, m._outputNorm.Span, c.NormEpsilon);
            if (count > 0) s.MatMul(m._output, b.Normed, count, s.Logits);
        }

        /// <summary>The recurrent steps of one layer's mixer on the batch: the causal convolution with its window,
        /// the selective scan with its state (both carried in <paramref name="state"/>), the grouped norm.</summary>
        private void Mixer(Layer layer, RecurrentState state)
        {
            _layer = layer; _state = state;
            _s.Team.Run(_convolve);
            _s.Team.Run(_scan);
            _s.ForEachToken(_batch.Count, _groupNorm);
        }
    }
}
