using MicroLm.Math;

namespace MicroLm.Models;

/// <summary>The element storage of one side (keys or values) of a KV cache: heads × rows vectors of
/// headDim values, head-major ([head][row][headDim]) so a head's rows are read sequentially. Attention
/// talks to it only through <see cref="Scores"/> and <see cref="WeightedSum"/>, so an element type
/// (F16, BF16, Q8_0, FP8) is one subclass: how a row is written and how the two reductions read it.
/// Each subclass must keep the reduction orders of docs/determinism.md: a score is one dot product
/// whose bits do not depend on which rows are scored with it; the weighted sum adds rows in row order.</summary>
internal abstract class KvStorage
{
    /// <summary>Makes the storage of one side of a cache (the cache asks for keys, then values).</summary>
    public delegate KvStorage Factory(int heads, int rows, int headDim);

    public int Heads { get; }
    public int Rows { get; }
    public int HeadDim { get; }

    protected KvStorage(int heads, int rows, int headDim)
    {
        if (heads <= 0 || rows <= 0 || headDim <= 0) throw new ArgumentOutOfRangeException(nameof(rows), "empty KV storage");
        Heads = heads; Rows = rows; HeadDim = headDim;
    }

    /// <summary>Bytes allocated.</summary>
    public abstract long Bytes { get; }

    /// <summary>Name of the element type as llama.cpp's --cache-type flags spell it ("f32", ...).</summary>
    public abstract string TypeName { get; }

    /// <summary>Writes row <paramref name="row"/> of head <paramref name="head"/> (headDim values).</summary>
    public abstract void Write(int head, int row, ReadOnlySpan<float> x);

    /// <summary>scores[i] = (q · row(first + i)) · scale for i &lt; scores.Length.</summary>
    public abstract void Scores(int head, ReadOnlySpan<float> q, int first, float scale, Span<float> scores);

    /// <summary>output = Σ_i weights[i] · row(first + i), summed in increasing i.</summary>
    public abstract void WeightedSum(int head, ReadOnlySpan<float> weights, int first, Span<float> output);

    /// <summary>F32 storage (the default).</summary>
    public static KvStorage F32(int heads, int rows, int headDim) => new F32KvStorage(heads, rows, headDim);
}

/// <summary>Keys or values as F32: four keys per pass (Kernels.Dot4 gives each the bits of Kernels.Dot).</summary>
internal sealed class F32KvStorage(int heads, int rows, int headDim) : KvStorage(heads, rows, headDim)
{
    private readonly float[] _data = new float[checked((long)heads * rows * headDim)];

    public override long Bytes => (long)_data.Length * sizeof(float);
    public override string TypeName => "f32";

    private int At(int head, int row) => (head * Rows + row) * HeadDim;

    /// <summary>The array and the element where (head, row) starts: for the browser's compiled attention kernel.</summary>
    internal (float[] Data, int At) Raw(int head, int row) => (_data, At(head, row));

    public override void Write(int head, int row, ReadOnlySpan<float> x) => x[..HeadDim].CopyTo(_data.AsSpan(At(head, row), HeadDim));

    public override void Scores(int head, ReadOnlySpan<float> q, int first, float scale, Span<float> scores)
    {
        int hd = HeadDim, at = At(head, first), n = scores.Length, t = 0;
        var keys = _data;
        Span<float> four = stackalloc float[4];
        for (; t + 4 <= n; t += 4)
        {
            int k = at + t * hd;
            Kernels.Dot4(q, keys.AsSpan(k, hd), keys.AsSpan(k + hd, hd), keys.AsSpan(k + 2 * hd, hd), keys.AsSpan(k + 3 * hd, hd), four);
            for (int j = 0; j < 4; j++) scores[t + j] = four[j] * scale;
        }
        for (; t < n; t++)
            scores[t] = Kernels.Dot(q, keys.AsSpan(at + t * hd, hd)) * scale;
    }

    public override void WeightedSum(int head, ReadOnlySpan<float> weights, int first, Span<float> output) =>
        Kernels.WeightedRowSum(weights, _data, At(head, first), HeadDim, output);
}
