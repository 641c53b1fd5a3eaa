using MicroLm.Generation;
using MicroLm.Models;

namespace MicroLm.FixedPoint;

/// <summary>What a fixed-point forward pass keeps for a batch of up to maxBatch tokens (token t's row of
/// a batch buffer at t·width, all Q16.16): the residual stream, the normed activations, the rotary angles
/// (Q2.30), attention with its KV cache, the range guard, and the state the per-token steps read. The
/// session holds it; the steps are delegates made once, so a forward pass allocates nothing.</summary>
internal abstract class FixedBatch
{
    public readonly Session Session;
    public readonly int[] X, Normed;       // batch × dim
    public readonly int[] Cos, Sin;        // batch × rope pairs
    public readonly FixedAttention Attention;
    public readonly int[] Tokens;
    public readonly RangeGuard Guard = new();
    public int Layer, StartPos;
    /// <summary>If set, sees every named buffer after each layer (activation-range measurements; docs/fixed-point.md).</summary>
    public RangeProbe? Probe;
    private readonly List<(string Name, int[] Values, int Width)> _named = [];
    private int _count;
    private readonly int _dim;
    private readonly Action<int> _embed;
    private readonly Action<int, int> _matmulJob;
    private FixedMatrix? _matmulWeight;
    private int[]? _matmulInput, _matmulOutput;
    private int _matmulCount;

    protected FixedBatch(Session s, int maxBatch, FixedMatrix embedding, FixedRope rope, long attentionScaleQ32)
    {
        var c = s.Config;
        Session = s;
        _dim = c.Dim;
        int half = c.RopeDims / 2;
        X = new int[maxBatch * c.Dim];
        Normed = new int[maxBatch * c.Dim];
        Cos = new int[maxBatch * half];
        Sin = new int[maxBatch * half];
        Attention = new FixedAttention(s, c.Layers, c.Heads, c.KvHeads, c.HeadDim, attentionScaleQ32, maxBatch);
        Tokens = new int[maxBatch];
        Name("residual x", X, c.Dim);
        Name("normed", Normed, c.Dim);
        Name("attention output", Attention.Output, c.Heads * c.HeadDim);
        _embed = t =>
        {
            embedding.ReadRow(Tokens[t], Row(X, t, _dim), Guard);
            rope.Angles(StartPos + t, Row(Cos, t, half), Row(Sin, t, half));
        };
        _matmulJob = (part, parts) =>
        {
            var w = _matmulWeight!;
            var (start, end) = ThreadTeam.Slice(w.Rows, part, parts);
            w.MatMul(_matmulInput!, _matmulCount, _matmulOutput!, start, end, Guard);
        };
    }

    public static Span<int> Row(int[] batch, int t, int width) => batch.AsSpan(t * width, width);

    /// <summary>Names a batch buffer (width values per token) for <see cref="Probe"/>.</summary>
    protected void Name(string name, int[] values, int width) => _named.Add((name, values, width));

    /// <summary>Starts a forward pass: the range guard cleared, each token's embedding into X and its rotary angles.</summary>
    public void Begin(ReadOnlySpan<int> tokens, int startPos)
    {
        Guard.Reset();
        StartPos = startPos;
        _count = tokens.Length;
        tokens.CopyTo(Tokens);
        Session.ForEachToken(tokens.Length, _embed);
        CheckRange("the token embeddings");
    }

    /// <summary>output[t·w.Rows + r] = w.row(r) · input[t], rows split across the session's threads.</summary>
    public void MatMul(FixedMatrix w, int[] input, int count, int[] output)
    {
        _matmulWeight = w; _matmulInput = input; _matmulOutput = output; _matmulCount = count;
        Session.Team.Run(_matmulJob);
    }

    /// <summary>x += y on each element, saturating (and counted) at Q16.16's limits.</summary>
    public void Add(Span<int> x, ReadOnlySpan<int> y)
    {
        for (int i = 0; i < x.Length; i++) x[i] = Fixed.Saturate((long)x[i] + y[i], Guard);
    }

    /// <summary>Stops the pass with an error if any value had to be clamped since the last check.</summary>
    public void CheckRange(string where)
    {
        if (Probe != null)
            foreach (var (name, values, width) in _named) Probe.Observe(name, values.AsSpan(0, System.Math.Min(values.Length, _count * width)));
        int n = Guard.Count;
        if (n != 0)
            throw new MicroLmException($"fixed-point overflow in {where}: {n} value(s) exceeded the Q16.16 range (±32768) or a 64-bit sum and would have been clamped; this model's activations are too large for the fixed backend (see docs/fixed-point.md)");
    }
}

/// <summary>Largest |value| and sum of squares per named buffer (Q16.16), for measuring activation ranges.</summary>
internal sealed class RangeProbe
{
    public readonly Dictionary<string, (long MaxAbs, UInt128 SumSquares, long Count)> Seen = [];

    public void Observe(string name, ReadOnlySpan<int> values)
    {
        var (max, squares, count) = Seen.TryGetValue(name, out var v) ? v : (0L, UInt128.Zero, 0L);
        foreach (int x in values)
        {
            long a = System.Math.Abs((long)x);
            if (a > max) max = a;
            squares += (UInt128)(ulong)(a * a);
        }
        Seen[name] = (max, squares, count + values.Length);
    }
}
