using MicroLm.Generation;

namespace MicroLm.FixedPoint;

/// <summary>The tokens of one fixed-point forward pass (up to maxTokens; token t's row of a batch buffer at
/// t·width, all Q16.16) and the per-token steps the architectures use: embedding, norms, biases, residual
/// adds, SwiGLU, GELU. As in the float backend's TokenBatch, each step is one call with its arguments and
/// runs token by token on the session's team through a delegate made once (no allocation per pass, and
/// the thread count never changes the bits). Every clamp at a format's limit is counted on
/// <see cref="Guard"/>; <see cref="CheckRange"/> turns any into an error.</summary>
internal sealed class FixedBatch
{
    public readonly int[] X;          // residual stream, batch × dim
    public readonly int[] Normed;     // batch × dim, input of the next matmuls
    public readonly RangeGuard Guard = new();
    public int Count { get; private set; }
    public int StartPos { get; private set; }
    public int MaxTokens { get; }
    /// <summary>If set, sees every named buffer at each <see cref="CheckRange"/> (activation-range measurements).</summary>
    public RangeProbe? Probe;

    private readonly Session _session;
    private readonly int _dim, _half;
    private readonly int[] _cos, _sin;    // batch × rope pairs, Q2.30
    private readonly int[] _tokens;
    private readonly FixedRope? _rope;
    private readonly List<(string Name, int[] Values, int Width)> _named = [];
    // The arguments of the step in progress (its delegate reads them).
    private FixedMatrix _matrix = null!;
    private int[] _weight = [], _bias = [], _buffer = [], _buffer2 = [], _output = [];
    private UInt128 _eps;
    private int _width, _first;
    private readonly Action<int> _embed, _rmsNorm, _layerNorm, _addBias, _addResidual, _gelu, _swiGlu;
    private readonly Action<int, int> _matmul;

    public FixedBatch(Session s, int maxTokens, int dim, FixedRope? rope)
    {
        _session = s;
        MaxTokens = maxTokens;
        _dim = dim;
        _rope = rope;
        _half = rope is null ? 0 : rope.Dimensions / 2;
        X = new int[maxTokens * dim];
        Normed = new int[maxTokens * dim];
        _cos = new int[maxTokens * _half];
        _sin = new int[maxTokens * _half];
        _tokens = new int[maxTokens];
        Name("residual x", X, dim);
        Name("normed", Normed, dim);
        _embed = t =>
        {
            _matrix.ReadRow(_tokens[t], Row(X, t, _dim), Guard);
            _rope?.Angles(StartPos + t, Row(_cos, t, _half), Row(_sin, t, _half));
        };
        _rmsNorm = t => FixedNorm.Rms(Row(X, _first + t, _dim), _weight, _eps, Row(Normed, t, _dim), Guard);
        _layerNorm = t => FixedNorm.Layer(Row(X, _first + t, _dim), _weight, _bias, _eps, Row(Normed, t, _dim), Guard);
        _addBias = t => Add(Row(_buffer, t, _width), _bias);
        _addResidual = t => Add(Row(X, t, _dim), Row(_buffer, t, _dim));
        _gelu = t =>
        {
            var x = Row(_buffer, t, _width); var h = Row(_output, t, _width);
            for (int i = 0; i < x.Length; i++) h[i] = FixedMath.Gelu(x[i]);
        };
        _swiGlu = t =>
        {
            var gate = Row(_buffer, t, _width); var up = Row(_buffer2, t, _width); var h = Row(_output, t, _width);
            for (int i = 0; i < h.Length; i++)
                h[i] = Fixed.Saturate(Fixed.RoundShift((long)FixedMath.Silu(gate[i]) * up[i], Fixed.FracBits), Guard);
        };
        _matmul = (part, parts) =>
        {
            var (start, end) = ThreadTeam.Slice(_matrix.Rows, part, parts);
            _matrix.MatMul(_buffer, Count, _output, start, end, Guard);
        };
    }

    public static Span<int> Row(int[] batch, int t, int width) => batch.AsSpan(t * width, width);

    /// <summary>cos and sin (Q2.30) of token t's rotary angles.</summary>
    public ReadOnlySpan<int> Cos(int t) => Row(_cos, t, _half);
    public ReadOnlySpan<int> Sin(int t) => Row(_sin, t, _half);

    /// <summary>Names a batch buffer (width values per token) for <see cref="Probe"/>.</summary>
    public void Name(string name, int[] values, int width) => _named.Add((name, values, width));

    /// <summary>Starts a pass: the guard cleared, each token's embedding into X and its rotary angles.</summary>
    public void Embed(FixedMatrix embedding, ReadOnlySpan<int> tokens, int startPos)
    {
        Guard.Reset();
        Count = tokens.Length;
        StartPos = startPos;
        tokens.CopyTo(_tokens);
        _matrix = embedding;
        Run(_embed);
        CheckRange("the token embeddings");
    }

    /// <summary>output[t·w.Rows + r] = w.row(r) · input[t] for the batch, rows split across the session's threads.</summary>
    public void MatMul(FixedMatrix w, int[] input, int[] output) => MatMul(w, input, Count, output);

    public void MatMul(FixedMatrix w, int[] input, int count, int[] output)
    {
        int saved = Count;
        _matrix = w; _buffer = input; _output = output; Count = count;
        _session.Team.Run(_matmul);
        Count = saved;
    }

    /// <summary>Normed = RMSNorm(X) ⊙ weight.</summary>
    public void RmsNorm(int[] weight, UInt128 eps) => RmsNormRows(0, Count, weight, eps);

    /// <summary>Normed rows 0..count−1 = RMSNorm of X rows first.. (the classifier's rows).</summary>
    public void RmsNormRows(int first, int count, int[] weight, UInt128 eps)
    {
        _weight = weight; _eps = eps; _first = first;
        Run(_rmsNorm, count);
    }

    /// <summary>Normed = LayerNorm(X) ⊙ weight + bias.</summary>
    public void LayerNorm(int[] weight, int[] bias, UInt128 eps) => LayerNormRows(0, Count, weight, bias, eps);

    public void LayerNormRows(int first, int count, int[] weight, int[] bias, UInt128 eps)
    {
        _weight = weight; _bias = bias; _eps = eps; _first = first;
        Run(_layerNorm, count);
    }

    /// <summary>Each token's row of <paramref name="rows"/> (width values) += bias, saturating.</summary>
    public void AddBias(int[] rows, int width, int[] bias)
    {
        _buffer = rows; _width = width; _bias = bias;
        Run(_addBias);
    }

    /// <summary>X += y, token by token, saturating (counted) at Q16.16's limits.</summary>
    public void AddResidual(int[] y)
    {
        _buffer = y;
        Run(_addResidual);
    }

    /// <summary>hidden = GELU(x) (tanh form).</summary>
    public void Gelu(int[] x, int width, int[] hidden)
    {
        _buffer = x; _width = width; _output = hidden;
        Run(_gelu);
    }

    /// <summary>hidden = SiLU(gate) ⊙ up.</summary>
    public void SwiGlu(int[] gate, int[] up, int width, int[] hidden)
    {
        _buffer = gate; _buffer2 = up; _width = width; _output = hidden;
        Run(_swiGlu);
    }

    /// <summary>x += y on each element, saturating (and counted) at Q16.16's limits.</summary>
    public void Add(Span<int> x, ReadOnlySpan<int> y)
    {
        for (int i = 0; i < x.Length; i++) x[i] = Fixed.Saturate((long)x[i] + y[i], Guard);
    }

    /// <summary>Stops the pass with an error if any value had to be clamped since the pass began.</summary>
    public void CheckRange(string where)
    {
        if (Probe != null)
            foreach (var (name, values, width) in _named) Probe.Observe(name, values.AsSpan(0, System.Math.Min(values.Length, Count * width)));
        int n = Guard.Count;
        if (n != 0)
            throw new MicroLmException($"fixed-point overflow in {where}: {n} value(s) exceeded the Q16.16 range (±32768) or a 64-bit sum and would have been clamped; this model's activations are too large for the fixed backend (see docs/fixed-point.md)");
    }

    private void Run(Action<int> step) => Run(step, Count);

    private void Run(Action<int> step, int count) => _session.ForEachToken(count, step);
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

/// <summary>A fixed-point architecture's forward pass, whose batch a measurement can reach (<see cref="FixedBatch.Probe"/>).</summary>
internal interface IFixedPass
{
    FixedBatch Batch { get; }
}
