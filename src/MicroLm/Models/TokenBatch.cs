using MicroLm.Generation;
using MicroLm.Math;
using MicroLm.Tensors;
using MicroLm.Tensors.Quants;

namespace MicroLm.Models;

/// <summary>The tokens of one forward pass (up to maxTokens; token t's row of a batch buffer at t·width)
/// and the per-token steps every architecture uses: embedding, norms, biases, residual adds, activations.
/// Each step is one call with its arguments; it runs token by token on the session's team (one token per
/// thread, so the thread count never changes the bits) through a delegate made once, so a forward pass
/// allocates nothing.</summary>
internal sealed class TokenBatch
{
    public readonly float[] X;            // residual stream, batch × dim
    public readonly Activation[] Normed;  // the normed residual of each token, input of the next matmuls
    public int Count { get; private set; }
    public int StartPos { get; private set; }
    public int MaxTokens { get; }

    private readonly Session _session;
    private readonly int _dim, _half;
    private readonly float[] _cos, _sin;  // batch × rope pairs
    private readonly float[] _positionRows; // batch × dim, for learned position embeddings
    private readonly int[] _tokens;
    private readonly Rope? _rope;
    // The arguments of the step in progress (its delegate reads them).
    private WeightMatrix _matrix = null!;
    private ReadOnlyMemory<float> _weight, _bias;
    private float _eps;
    private float[] _buffer = [], _buffer2 = [];
    private int _width;
    private Activation[] _output = [];
    private WeightMatrix? _next;
    private readonly Action<int> _embed, _addRowOf, _rmsNorm, _layerNorm, _addBias, _addResidual, _gelu, _swiGlu;

    /// <param name="positionEmbeddings">Keep room for learned position embeddings (see <see cref="AddPositionEmbedding"/>).</param>
    public TokenBatch(Session s, int maxTokens, int dim, Rope? rope, bool positionEmbeddings = false)
    {
        _session = s;
        MaxTokens = maxTokens;
        _dim = dim;
        _rope = rope;
        _half = rope is null ? 0 : rope.Dimensions / 2;
        X = new float[maxTokens * dim];
        Normed = Activations(maxTokens, dim);
        _cos = new float[maxTokens * _half];
        _sin = new float[maxTokens * _half];
        _tokens = new int[maxTokens];
        _positionRows = new float[positionEmbeddings ? maxTokens * dim : 0];
        _embed = t =>
        {
            _matrix.ReadRow(_tokens[t], Row(X, t, _dim));
            _rope?.Angles(StartPos + t, Row(_cos, t, _half), Row(_sin, t, _half));
        };
        _addRowOf = t =>
        {
            var row = Row(_positionRows, t, _dim);
            _matrix.ReadRow(StartPos + t, row);
            Kernels.Add(Row(X, t, _dim), row);
        };
        _rmsNorm = t => { Kernels.RmsNorm(Row(X, t, _dim), _weight.Span, _eps, Normed[t].Values); Wrote(Normed, t); };
        _layerNorm = t => { Kernels.LayerNorm(Row(X, t, _dim), _weight.Span, _bias.Span, _eps, Normed[t].Values); Wrote(Normed, t); };
        _addBias = t => Kernels.Add(Row(_buffer, t, _width), _bias.Span);
        _addResidual = t => Kernels.Add(Row(X, t, _dim), Row(_buffer, t, _dim));
        _gelu = t => { DetMath.GeluTanh(Row(_buffer, t, _width), _output[t].Values); Wrote(_output, t); };
        _swiGlu = t => { DetMath.SiluTimes(Row(_buffer, t, _width), Row(_buffer2, t, _width), _output[t].Values); Wrote(_output, t); };
    }

    /// <summary>After a step wrote xs[t]: its old forms are stale, and the form the next matmul reads (if the step
    /// was told which one) is made now, by the thread that wrote the row while it is in cache, so the matmul
    /// needs no pass of its own over the batch (and no wait for the team between the two).</summary>
    private void Wrote(Activation[] xs, int t)
    {
        xs[t].Invalidate();
        if (_next is { } next) WeightMatrix.Prepare(next, xs, t, t + 1);
    }

    public static Activation[] Activations(int count, int length) =>
        Enumerable.Range(0, count).Select(_ => new Activation(length)).ToArray();

    public static Span<float> Row(float[] batch, int t, int width) => batch.AsSpan(t * width, width);

    /// <summary>Token t's rotary cos and sin (one per rotated pair), computed once per pass for every layer.</summary>
    public ReadOnlySpan<float> Cos(int t) => Row(_cos, t, _half);
    public ReadOnlySpan<float> Sin(int t) => Row(_sin, t, _half);
    /// <summary>The cos (sin) rows of tokens 0..Count−1, one after another (for the browser's compiled batch step).</summary>
    public ReadOnlySpan<float> CosRows => _cos.AsSpan(0, Count * _half);
    public ReadOnlySpan<float> SinRows => _sin.AsSpan(0, Count * _half);

    /// <summary>Starts a pass: x[t] = embedding row of tokens[t], and the rotary angles of positions startPos...</summary>
    public void Embed(WeightMatrix embedding, ReadOnlySpan<int> tokens, int startPos)
    {
        if (tokens.Length > MaxTokens) throw new ArgumentException("batch larger than the session's maxBatch");
        Count = tokens.Length;
        StartPos = startPos;
        tokens.CopyTo(_tokens);
        _matrix = embedding;
        Run(_embed);
    }

    /// <summary>x[t] += positions row (startPos + t): learned absolute position embeddings.</summary>
    public void AddPositionEmbedding(WeightMatrix positions) { _matrix = positions; Run(_addRowOf); }

    /// <summary>normed[t] = RmsNorm(x[t]) ⊙ weight. <paramref name="next"/>: the matmul that reads normed first
    /// (its activation form is made in the same step; any matmul may still read it, see <see cref="Session.MatMul"/>).</summary>
    public void RmsNorm(ReadOnlyMemory<float> weight, float eps, WeightMatrix? next = null)
    {
        _weight = weight; _eps = eps; _next = next;
        // The browser's compiled kernel, where a host installed one: the whole batch in one call, same bits.
        if (Tensors.Wasm.CompiledKernels.TryRmsNormRows(X, _dim, weight.Span, eps, Normed, Count))
        {
            for (int t = 0; t < Count; t++) Normed[t].Invalidate();
            return;
        }
        Run(_rmsNorm);
    }

    /// <summary>normed[t] = LayerNorm(x[t]) ⊙ weight + bias (<paramref name="next"/> as in <see cref="RmsNorm"/>).</summary>
    public void LayerNorm(ReadOnlyMemory<float> weight, ReadOnlyMemory<float> bias, float eps, WeightMatrix? next = null)
    {
        _weight = weight; _bias = bias; _eps = eps; _next = next;
        Run(_layerNorm);
    }

    /// <summary>rows[t] += bias (rows of <paramref name="width"/> values in a batch buffer).</summary>
    public void AddBias(float[] rows, int width, ReadOnlyMemory<float> bias) { _buffer = rows; _width = width; _bias = bias; Run(_addBias); }

    /// <summary>x[t] += rows[t]: a residual add.</summary>
    public void AddResidual(float[] rows)
    {
        _buffer = rows;
        if (Tensors.Wasm.CompiledKernels.TryAdd(X.AsSpan(0, Count * _dim), rows.AsSpan(0, Count * _dim))) return; // the browser's, one call
        Run(_addResidual);
    }

    /// <summary>output[t] = gelu(rows[t]), GELU in its tanh form (<paramref name="next"/> as in <see cref="RmsNorm"/>).</summary>
    public void Gelu(float[] rows, int width, Activation[] output, WeightMatrix? next = null)
    {
        _buffer = rows; _width = width; _output = output; _next = next;
        Run(_gelu);
    }

    /// <summary>output[t] = silu(gate[t]) ⊙ up[t] (<paramref name="next"/> as in <see cref="RmsNorm"/>).</summary>
    public void SwiGlu(float[] gate, float[] up, int width, Activation[] output, WeightMatrix? next = null)
    {
        _buffer = gate; _buffer2 = up; _width = width; _output = output; _next = next;
        if (Tensors.Wasm.CompiledKernels.TrySiluTimesRows(gate, up, width, output, Count)) // the browser's, one call
        {
            for (int t = 0; t < Count; t++) output[t].Invalidate();
            return;
        }
        Run(_swiGlu);
    }

    /// <summary>Final norm of the rows whose logits are wanted: normed[i] = RmsNorm(x[first + i]), i &lt; count.</summary>
    public void RmsNormRows(int first, int count, ReadOnlySpan<float> weight, float eps)
    {
        for (int i = 0; i < count; i++) { Kernels.RmsNorm(Row(X, first + i, _dim), weight, eps, Normed[i].Values); Normed[i].Invalidate(); }
    }

    /// <summary>Final norm of the rows whose logits are wanted: normed[i] = LayerNorm(x[first + i]), i &lt; count.</summary>
    public void LayerNormRows(int first, int count, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, float eps)
    {
        for (int i = 0; i < count; i++) { Kernels.LayerNorm(Row(X, first + i, _dim), weight, bias, eps, Normed[i].Values); Normed[i].Invalidate(); }
    }

    /// <summary>Stops if the residual stream is no longer finite.</summary>
    public void CheckFinite(int layer) => _session.CheckFinite(X.AsSpan(0, Count * _dim), layer);

    private void Run(Action<int> step) => _session.ForEachToken(Count, step);
}
