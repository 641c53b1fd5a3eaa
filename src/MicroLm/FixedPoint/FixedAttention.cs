using MicroLm.Generation;
using MicroLm.Models;

namespace MicroLm.FixedPoint;

/// <summary>What a fixed-point attention layer assumes nothing about: heads, KV heads, head size, the
/// score scale in Q.32 (1/√d by the integer square root, or 2³² = 1 for GPT-Neo), and the rotary
/// embedding (or null).</summary>
internal sealed record FixedAttentionOptions(int Heads, int KvHeads, int HeadDim, long ScaleQ32, FixedRope? Rope)
{
    public int QueryDim => Heads * HeadDim;
    public int KvDim => KvHeads * HeadDim;

    /// <summary>LLaMA's and GPT-NeoX's attention: every earlier position, scale 1/√headDim.</summary>
    public static FixedAttentionOptions Standard(ModelConfig c, FixedRope rope) =>
        new(c.Heads, c.KvHeads, c.HeadDim, InverseSqrtQ32(c.HeadDim), rope);

    /// <summary>2³²/√n rounded down, by the integer square root of 2⁶⁴/n.</summary>
    public static long InverseSqrtQ32(int n) => (long)FixedMath.Sqrt((UInt128.One << 64) / (uint)n);
}

/// <summary>One attention layer's keys and values in Q16.16, head-major ([kv head][position][head dim]),
/// for every position of the context: the fixed backend's layer memory, held by the session.</summary>
internal sealed class FixedKvCache : LayerMemory
{
    public readonly int[] Keys, Values;
    public int KvHeads { get; }
    public int HeadDim { get; }
    public int Capacity { get; }

    public FixedKvCache(int layer, FixedAttentionOptions o, int contextLength) : base(layer)
    {
        KvHeads = o.KvHeads; HeadDim = o.HeadDim; Capacity = contextLength;
        Keys = new int[(long)contextLength * o.KvDim];
        Values = new int[(long)contextLength * o.KvDim];
    }

    public override string Kind => "kv-fixed";
    public override long Bytes => 2L * Keys.Length * sizeof(int);
    // Nothing to clear: attention reads only positions written since the reset.
    public override void Reset() { }

    /// <summary>Stores one token's keys and values (kvHeads × headDim each) at <paramref name="pos"/>.</summary>
    public void Store(int pos, ReadOnlySpan<int> k, ReadOnlySpan<int> v)
    {
        for (int h = 0; h < KvHeads; h++)
        {
            int at = (h * Capacity + pos) * HeadDim;
            k.Slice(h * HeadDim, HeadDim).CopyTo(Keys.AsSpan(at, HeadDim));
            v.Slice(h * HeadDim, HeadDim).CopyTo(Values.AsSpan(at, HeadDim));
        }
    }
}

/// <summary>A batch buffer holding, for token t, a slice at t·Stride + Offset (e.g. Q inside a fused QKV row).</summary>
internal readonly record struct FixedRows(int[] Data, int Stride, int Offset)
{
    public Span<int> Of(int t, int width) => Data.AsSpan(t * Stride + Offset, width);
}

/// <summary>One layer's attention for a batch, in integers:
/// <list type="number">
/// <item>per token: rotary q and k (if the options have a rope), then k, v into the cache;</item>
/// <item>score = (Σ q·k) · scale: each product (≤ 2⁶²) is shifted right by bits(headDim) before the
/// 64-bit sum, so the sum stays below 2⁶²; times the Q.32 scale in 128 bits, rounded into Q16.16
/// (saturating, counted);</item>
/// <item>softmax: e = exp(score − max) in Q2.30; p = e · ⌊2⁶²/Σe⌋ ≫ 32 in Q2.30, so Σp ≤ 1;</item>
/// <item>out = Σ p·v in 64 bits (|Σ| ≤ max|v|·2³⁰ &lt; 2⁶¹: no overflow), rounded to Q16.16.</item>
/// </list>
/// (token, head) pairs are split across the session's threads, each computed whole by one thread.</summary>
internal sealed class FixedAttentionBatch
{
    private readonly Session _session;
    private readonly FixedBatch _batch;
    private readonly int[][] _scores;   // per thread: context
    private readonly long[][] _sums;    // per thread: head dim
    private readonly Action<int> _ropeAndStore;
    private readonly Action<int, int> _heads;
    private FixedAttentionOptions _o = null!;
    private FixedKvCache _cache = null!;
    private FixedRows _q, _k, _v;

    /// <summary>Per token: heads × headDim attention outputs, Q16.16 (the input of the output projection).</summary>
    public int[] Output { get; }

    public FixedAttentionBatch(Session s, FixedBatch batch, int queryDim, int headDim)
    {
        _session = s;
        _batch = batch;
        Output = new int[batch.MaxTokens * queryDim];
        _scores = Enumerable.Range(0, s.Team.Count).Select(_ => new int[s.ContextLength]).ToArray();
        _sums = Enumerable.Range(0, s.Team.Count).Select(_ => new long[headDim]).ToArray();
        batch.Name("attention output", Output, queryDim);
        _ropeAndStore = t =>
        {
            var q = _q.Of(t, _o.QueryDim); var k = _k.Of(t, _o.KvDim);
            if (_o.Rope is { } rope)
            {
                rope.Apply(q, _o.Heads, _o.HeadDim, _batch.Cos(t), _batch.Sin(t), _batch.Guard);
                rope.Apply(k, _o.KvHeads, _o.HeadDim, _batch.Cos(t), _batch.Sin(t), _batch.Guard);
            }
            _cache.Store(_batch.StartPos + t, k, _v.Of(t, _o.KvDim));
        };
        _heads = Part;
    }

    /// <summary>Attention of the batch's tokens (positions StartPos..) into <see cref="Output"/>.</summary>
    public void Run(FixedAttentionOptions o, FixedKvCache cache, FixedRows q, FixedRows k, FixedRows v)
    {
        _o = o; _cache = cache; _q = q; _k = k; _v = v;
        _session.ForEachToken(_batch.Count, _ropeAndStore);
        _session.Team.Run(_heads);
    }

    private void Part(int part, int parts)
    {
        var o = _o;
        int pairs = _batch.Count * o.Heads, group = o.Heads / o.KvHeads;
        // Interleaved (token, head) pairs, as Attention's: contiguous slices gave the last part most of the causal work.
        for (int i = part; i < pairs; i += parts)
        {
            int t = i / o.Heads, h = i % o.Heads;
            Head(_batch.StartPos + t, _q.Of(t, o.QueryDim).Slice(h * o.HeadDim, o.HeadDim), h / group,
                 _scores[part], _sums[part], Output.AsSpan((t * o.Heads + h) * o.HeadDim, o.HeadDim));
        }
    }

    private void Head(int pos, ReadOnlySpan<int> q, int kvHead, int[] scores, long[] sums, Span<int> output)
    {
        int hd = _o.HeadDim, shift = Fixed.BitLength((ulong)hd);
        long scale = _o.ScaleQ32;
        var guard = _batch.Guard;
        var keys = _cache.Keys.AsSpan(kvHead * _cache.Capacity * hd, (pos + 1) * hd);
        var values = _cache.Values.AsSpan(kvHead * _cache.Capacity * hd, (pos + 1) * hd);
        int max = int.MinValue;
        for (int t = 0; t <= pos; t++)
        {
            var k = keys.Slice(t * hd, hd);
            long dot = 0;
            for (int i = 0; i < hd; i++) dot += (long)q[i] * k[i] >> shift;
            // dot is in 2^(shift−32) units; the score in Q16.16 is dot · scale / 2^(48 − shift).
            int score = Fixed.Saturate((long)Fixed.RoundShift((Int128)dot * scale, 48 - shift), guard);
            scores[t] = score;
            if (score > max) max = score;
        }
        long total = 0;
        for (int t = 0; t <= pos; t++)
        {
            long d = (long)scores[t] - max;
            scores[t] = d < int.MinValue ? 0 : FixedMath.ExpNegative((int)d);
            total += scores[t];
        }
        long reciprocal = (1L << 62) / total;           // total ≥ 2^30 (the maximum contributes exp(0))
        Array.Clear(sums, 0, hd);
        for (int t = 0; t <= pos; t++)
        {
            long p = scores[t] * reciprocal >> 32;      // Q2.30
            if (p == 0) continue;
            var v = values.Slice(t * hd, hd);
            for (int i = 0; i < hd; i++) sums[i] += p * v[i];
        }
        for (int i = 0; i < hd; i++) output[i] = (int)Fixed.RoundShift(sums[i], Fixed.Q30);
    }
}
