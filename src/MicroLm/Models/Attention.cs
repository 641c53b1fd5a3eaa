using MicroLm.Generation;
using MicroLm.Math;
using MicroLm.Tensors.Quants;

namespace MicroLm.Models;

/// <summary>Causal multi-head attention over the session's KV cache, with grouped-query heads
/// (query head h reads KV head h / (heads / kvHeads)). Shared by the model families.</summary>
internal static class Attention
{
    /// <summary>For one token at <paramref name="pos"/> and one query head: out = softmax(q·K/√d) · V over positions 0..pos.</summary>
    public static void Head(Session s, int layer, int pos, ReadOnlySpan<float> q, int kvHead, Span<float> scores, Span<float> output)
    {
        int hd = s.Config.HeadDim;
        float scale = 1f / MathF.Sqrt(hd);
        var keys = s.KeyCache[layer];
        var values = s.ValueCache[layer];
        // The cache is head-major (see Store): this head's keys and values for positions 0..pos are contiguous.
        int at = kvHead * s.ContextLength * hd, t = 0;
        // The browser's compiled WebAssembly kernel, where a host installed one (same bits).
        if (Tensors.Wasm.CompiledKernels.TryAttention(q, keys, values, at, pos + 1, hd, scale, scores, output)) return;
        // Four keys per pass (a dot's product q·k has the bits of k·q, so Dot4 serves).
        Span<float> four = stackalloc float[4];
        for (; t + 3 <= pos; t += 4)
        {
            int k = at + t * hd;
            Kernels.Dot4(q, keys.AsSpan(k, hd), keys.AsSpan(k + hd, hd), keys.AsSpan(k + 2 * hd, hd), keys.AsSpan(k + 3 * hd, hd), four);
            for (int j = 0; j < 4; j++) scores[t + j] = four[j] * scale;
        }
        for (; t <= pos; t++)
            scores[t] = Kernels.Dot(q, keys.AsSpan(at + t * hd, hd)) * scale;
        DetMath.SoftmaxInPlace(scores[..(pos + 1)]);
        Kernels.WeightedRowSum(scores[..(pos + 1)], values, at, hd, output);
    }

    /// <summary>Writes one token's keys and values (kvDim each) into the cache at <paramref name="pos"/>.
    /// Layout per layer: [kv head][position][head dim], so attention reads each head's cache sequentially.</summary>
    public static void Store(Session s, int layer, int pos, ReadOnlySpan<float> k, ReadOnlySpan<float> v)
    {
        int hd = s.Config.HeadDim, ctx = s.ContextLength;
        var keys = s.KeyCache[layer].AsSpan();
        var values = s.ValueCache[layer].AsSpan();
        for (int h = 0; h < s.Config.KvHeads; h++)
        {
            int at = (h * ctx + pos) * hd;
            k.Slice(h * hd, hd).CopyTo(keys.Slice(at, hd));
            v.Slice(h * hd, hd).CopyTo(values.Slice(at, hd));
        }
    }
}

/// <summary>One layer's attention for a batch of tokens: the (token, head) pairs are split across the
/// session's threads, each pair owned by one thread, so the thread count never changes the bits.
/// The queries are read from a batch buffer where token t's heads start at t·stride + offset.</summary>
internal sealed class AttentionBatch
{
    private readonly Session _session;
    private readonly float[][] _scores;   // per thread: context
    private readonly Action<int, int> _job;
    private float[] _q = [];
    private int _qStride, _qOffset, _count, _startPos, _layer;

    /// <summary>Per token: heads × headDim attention outputs (the input of the output projection).</summary>
    public Activation[] Output { get; }

    public AttentionBatch(Session s, int maxBatch)
    {
        _session = s;
        int qDim = s.Config.Heads * s.Config.HeadDim;
        Output = Enumerable.Range(0, maxBatch).Select(_ => new Activation(qDim)).ToArray();
        _scores = Enumerable.Range(0, s.Team.Count).Select(_ => new float[s.ContextLength]).ToArray();
        _job = Part;
    }

    /// <summary>Attention of tokens at positions startPos..startPos+count−1 (their K/V already in the cache) into <see cref="Output"/>.</summary>
    public void Run(int layer, int startPos, int count, float[] q, int qStride, int qOffset)
    {
        _layer = layer; _startPos = startPos; _count = count; _q = q; _qStride = qStride; _qOffset = qOffset;
        _session.Team.Run(_job);
        for (int t = 0; t < count; t++) Output[t].Invalidate();
    }

    private void Part(int part, int parts)
    {
        var c = _session.Config;
        int pairs = _count * c.Heads, hd = c.HeadDim, group = c.Heads / c.KvHeads;
        var (start, end) = ThreadTeam.Slice(pairs, part, parts);
        for (int i = start; i < end; i++)
        {
            int t = i / c.Heads, h = i % c.Heads;
            var output = Output[t].Span.Slice(h * hd, hd);
            Attention.Head(_session, _layer, _startPos + t, _q.AsSpan(t * _qStride + _qOffset + h * hd, hd), h / group, _scores[part], output);
        }
    }
}
