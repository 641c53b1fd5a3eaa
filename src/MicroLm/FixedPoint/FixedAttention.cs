using MicroLm.Generation;

namespace MicroLm.FixedPoint;

/// <summary>Causal multi-head attention in integers over a Q16.16 KV cache that the session holds
/// (head-major per layer: [kv head][position][head dim]), with grouped-query heads.
/// <list type="number">
/// <item>score = (Σ q·k) · scale: each product (≤ 2⁶²) is shifted right by bits(headDim) before the
/// 64-bit sum, so the sum stays below 2⁶²; scale is Q.32 (1/√headDim by the integer square root, or 1),
/// the product taken in 128 bits and rounded into Q16.16 (saturating, counted).</item>
/// <item>softmax: e = exp(score − max) in Q2.30 (<see cref="FixedMath.ExpNegative"/>); p = e · ⌊2⁶²/Σe⌋
/// ≫ 32 in Q2.30, so Σp ≤ 1.</item>
/// <item>out = Σ p·v in 64 bits (|Σ| ≤ max|v|·2³⁰ &lt; 2⁶¹, no overflow) rounded to Q16.16.</item>
/// </list>
/// (token, head) pairs are split across the session's threads, each computed whole by one thread.</summary>
internal sealed class FixedAttention
{
    private readonly Session _session;
    private readonly int _heads, _kvHeads, _headDim, _context, _productShift;
    private readonly long _scaleQ32;
    private readonly int[][] _keys, _values;  // per layer
    private readonly int[][] _scores;         // per thread: context
    private readonly long[][] _sums;          // per thread: head dim
    private readonly Action<int, int> _job;
    private int[] _q = [];
    private int _qStride, _count, _startPos, _layer;
    private RangeGuard _guard = null!;

    /// <summary>Per token: heads × headDim attention outputs, Q16.16.</summary>
    public int[] Output { get; }

    /// <param name="scaleQ32">The score scale in Q.32 (see <see cref="InverseSqrtQ32"/>; 2³² for none, as GPT-Neo).</param>
    public FixedAttention(Session s, int layers, int heads, int kvHeads, int headDim, long scaleQ32, int maxBatch)
    {
        _session = s;
        _heads = heads; _kvHeads = kvHeads; _headDim = headDim; _context = s.ContextLength;
        _scaleQ32 = scaleQ32;
        _productShift = Fixed.BitLength((ulong)headDim);
        _keys = new int[layers][];
        _values = new int[layers][];
        for (int l = 0; l < layers; l++)
        {
            _keys[l] = new int[(long)_context * kvHeads * headDim];
            _values[l] = new int[(long)_context * kvHeads * headDim];
        }
        _scores = Enumerable.Range(0, s.Team.Count).Select(_ => new int[_context]).ToArray();
        _sums = Enumerable.Range(0, s.Team.Count).Select(_ => new long[headDim]).ToArray();
        Output = new int[maxBatch * heads * headDim];
        _job = Part;
    }

    /// <summary>Bytes of the cache.</summary>
    public long CacheBytes => 2L * _keys.Length * _context * _kvHeads * _headDim * sizeof(int);

    /// <summary>2³²/√n rounded down, by the integer square root of 2⁶⁴/n.</summary>
    public static long InverseSqrtQ32(int n) => (long)FixedMath.Sqrt((UInt128.One << 64) / (uint)n);

    /// <summary>Writes one token's keys and values (kvHeads × headDim each) at <paramref name="pos"/>.</summary>
    public void Store(int layer, int pos, ReadOnlySpan<int> k, ReadOnlySpan<int> v)
    {
        for (int h = 0; h < _kvHeads; h++)
        {
            int at = (h * _context + pos) * _headDim;
            k.Slice(h * _headDim, _headDim).CopyTo(_keys[layer].AsSpan(at, _headDim));
            v.Slice(h * _headDim, _headDim).CopyTo(_values[layer].AsSpan(at, _headDim));
        }
    }

    /// <summary>Attention of tokens at startPos..startPos+count−1 (their K/V already stored) into <see cref="Output"/>;
    /// token t's query heads start at q[t·qStride].</summary>
    public void Run(int layer, int startPos, int count, int[] q, int qStride, RangeGuard guard)
    {
        _layer = layer; _startPos = startPos; _count = count; _q = q; _qStride = qStride; _guard = guard;
        _session.Team.Run(_job);
    }

    private void Part(int part, int parts)
    {
        int pairs = _count * _heads, group = _heads / _kvHeads;
        var (start, end) = ThreadTeam.Slice(pairs, part, parts);
        for (int i = start; i < end; i++)
        {
            int t = i / _heads, h = i % _heads;
            Head(_startPos + t, _q.AsSpan(t * _qStride + h * _headDim, _headDim), h / group,
                 _scores[part], _sums[part], Output.AsSpan((t * _heads + h) * _headDim, _headDim));
        }
    }

    private void Head(int pos, ReadOnlySpan<int> q, int kvHead, int[] scores, long[] sums, Span<int> output)
    {
        int hd = _headDim, shift = _productShift;
        var keys = _keys[_layer].AsSpan(kvHead * _context * hd, (pos + 1) * hd);
        var values = _values[_layer].AsSpan(kvHead * _context * hd, (pos + 1) * hd);
        int max = int.MinValue;
        for (int t = 0; t <= pos; t++)
        {
            var k = keys.Slice(t * hd, hd);
            long dot = 0;
            for (int i = 0; i < hd; i++) dot += (long)q[i] * k[i] >> shift;
            // dot is in 2^(shift−32) units; the score in Q16.16 is dot · scale / 2^(48 − shift).
            int score = Fixed.Saturate((long)Fixed.RoundShift((Int128)dot * _scaleQ32, 48 - shift), _guard);
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
