using MicroLm.Math;

namespace MicroLm.Sampling;

/// <summary>Chooses the next token from logits, in llama.cpp's order: repetition penalty, top-k,
/// top-p, min-p, then temperature and a draw. Candidates are ordered by logit and then by id, and
/// every sum runs in that order, so a seed gives the same tokens everywhere. Buffers are allocated
/// once; sampling allocates nothing.</summary>
internal sealed class Sampler
{
    private readonly SamplingOptions _o;
    private readonly float[] _logits;
    private readonly int[] _ids;
    private readonly float[] _probs;
    private readonly int[] _recent;
    private int _recentCount, _recentNext;
    private Rng _rng;

    /// <param name="historyLimit">Most tokens the sampler will ever see (a session's context length): the
    /// repetition window is never longer, so a huge <see cref="SamplingOptions.RepeatLastN"/> costs nothing.</param>
    public Sampler(SamplingOptions options, int vocabSize, int historyLimit = 1 << 20)
    {
        _o = options;
        // Written so NaN fails each test (every comparison with NaN is false).
        if (!(options.TopP > 0 && options.TopP <= 1)) throw new MicroLmException($"top-p must be in (0, 1], got {options.TopP}");
        if (!(options.MinP >= 0 && options.MinP <= 1)) throw new MicroLmException($"min-p must be in [0, 1], got {options.MinP}");
        if (float.IsNaN(options.Temperature) || float.IsInfinity(options.Temperature))
            throw new MicroLmException($"temperature must be a finite number, got {options.Temperature}");
        if (options.TopK < 0) throw new MicroLmException($"top-k must be 0 or more, got {options.TopK}");
        if (!(options.RepeatPenalty > 0) || float.IsInfinity(options.RepeatPenalty))
            throw new MicroLmException($"repeat penalty must be a positive finite number, got {options.RepeatPenalty}");
        _logits = new float[vocabSize];
        _ids = new int[vocabSize];
        _probs = new float[vocabSize];
        _recent = new int[System.Math.Clamp(options.RepeatLastN, 0, System.Math.Max(0, historyLimit))];
        _rng = new Rng(options.Seed);
    }

    /// <summary>Records a token (prompt or generated) for the repetition penalty.</summary>
    public void Accept(int token)
    {
        if (_recent.Length == 0) return;
        _recent[_recentNext] = token;
        _recentNext = (_recentNext + 1) % _recent.Length;
        _recentCount = System.Math.Min(_recentCount + 1, _recent.Length);
    }

    public int Sample(ReadOnlySpan<float> logits)
    {
        var l = _logits.AsSpan(0, logits.Length);
        logits.CopyTo(l);
        if (_o.RepeatPenalty != 1f)
            for (int i = 0; i < _recentCount; i++)
            {
                int id = _recent[i];
                if ((uint)id >= (uint)l.Length) continue;
                l[id] = l[id] > 0 ? l[id] / _o.RepeatPenalty : l[id] * _o.RepeatPenalty;
            }
        if (_o.Temperature <= 0) return Kernels.ArgMax(l);

        // Candidates, best first (logit descending, then id ascending).
        int n = l.Length;
        int k = _o.TopK > 0 && _o.TopK < n ? _o.TopK : n;
        var ids = _ids.AsSpan(0, n);
        int count = SelectTop(l, ids, k);
        var cand = ids[..count];
        SortBestFirst(cand, l);

        // top-p and min-p on the untempered distribution.
        var p = _probs.AsSpan(0, count);
        Softmax(cand, 1f, p);
        if (_o.TopP < 1f)
        {
            float cumulative = 0;
            int keep = count;
            for (int i = 0; i < count; i++)
            {
                cumulative += p[i];
                if (cumulative >= _o.TopP) { keep = i + 1; break; }
            }
            count = keep;
        }
        if (_o.MinP > 0f)
        {
            float threshold = _o.MinP * p[0];
            int keep = 1;
            while (keep < count && p[keep] >= threshold) keep++;
            count = keep;
        }
        cand = cand[..count];
        p = p[..count];

        Softmax(cand, _o.Temperature, p);
        float r = _rng.NextFloat();
        float acc = 0;
        for (int i = 0; i < count; i++)
        {
            acc += p[i];
            if (r < acc) return cand[i];
        }
        return cand[count - 1]; // rounding left r above the last cumulative sum
    }

    /// <summary>p[i] = exp((l[c_i] − l[c_0])/T) / Σ, summed in candidate order.</summary>
    private void Softmax(ReadOnlySpan<int> cand, float temperature, Span<float> p)
    {
        float max = _logits[cand[0]];
        float sum = 0;
        for (int i = 0; i < cand.Length; i++)
        {
            p[i] = DetMath.Exp((_logits[cand[i]] - max) / temperature);
            sum += p[i];
        }
        float inv = 1f / sum;
        for (int i = 0; i < cand.Length; i++) p[i] *= inv;
    }

    /// <summary>Puts the ids of the k best logits into ids[..k] (unordered) with a bounded min-heap.</summary>
    private static int SelectTop(ReadOnlySpan<float> l, Span<int> ids, int k)
    {
        if (k >= l.Length)
        {
            for (int i = 0; i < l.Length; i++) ids[i] = i;
            return l.Length;
        }
        var heap = ids[..k];
        for (int i = 0; i < k; i++) { heap[i] = i; SiftUp(heap, i, l); }
        for (int i = k; i < l.Length; i++)
        {
            if (Better(l, i, heap[0]))
            {
                heap[0] = i;
                SiftDown(heap, 0, l);
            }
        }
        return k;
    }

    private static bool Better(ReadOnlySpan<float> l, int a, int b) => l[a] > l[b] || l[a] == l[b] && a < b;

    private static void SiftUp(Span<int> h, int i, ReadOnlySpan<float> l)
    {
        while (i > 0)
        {
            int parent = (i - 1) / 2;
            if (!Better(l, h[parent], h[i])) break;
            (h[parent], h[i]) = (h[i], h[parent]);
            i = parent;
        }
    }

    private static void SiftDown(Span<int> h, int i, ReadOnlySpan<float> l)
    {
        while (true)
        {
            int a = 2 * i + 1, b = a + 1, worst = i;
            if (a < h.Length && Better(l, h[worst], h[a])) worst = a;
            if (b < h.Length && Better(l, h[worst], h[b])) worst = b;
            if (worst == i) return;
            (h[worst], h[i]) = (h[i], h[worst]);
            i = worst;
        }
    }

    /// <summary>Heap sort, best first, without allocating (Span.Sort with a comparer allocates a delegate).</summary>
    private static void SortBestFirst(Span<int> ids, ReadOnlySpan<float> l)
    {
        // A heap with the worst candidate at the root; moving roots to the end leaves the best first.
        for (int i = 1; i < ids.Length; i++) SiftUp(ids, i, l);
        for (int end = ids.Length - 1; end > 0; end--)
        {
            (ids[0], ids[end]) = (ids[end], ids[0]);
            SiftDown(ids[..end], 0, l);
        }
    }
}
