using System.Runtime.Intrinsics;

namespace MicroLm.Math;

// Span entry points used by the forward pass. Each dispatches to the widest hardware-accelerated
// vector width (512, 256, 128 bits) or the scalar loop; all paths produce identical bits because every
// lane runs the scalar function's exact op sequence (see DetMath.Simd.cs).
internal static partial class DetMath
{
    /// <summary>y[i] = Exp(x[i]). x and y must have equal length; they may be the same span (in place) but must not partially overlap.</summary>
    public static void Exp(ReadOnlySpan<float> x, Span<float> y)
    {
        CheckLengths(x, y);
        if (Vector512.IsHardwareAccelerated) ExpV512Path(x, y);
        else if (Vector256.IsHardwareAccelerated) ExpV256Path(x, y);
        else if (Vector128.IsHardwareAccelerated) ExpV128Path(x, y);
        else ExpScalarPath(x, y);
    }

    /// <summary>y[i] = Silu(x[i]). Same span rules as <see cref="Exp(ReadOnlySpan{float}, Span{float})"/>.</summary>
    public static void Silu(ReadOnlySpan<float> x, Span<float> y)
    {
        CheckLengths(x, y);
        if (Vector512.IsHardwareAccelerated) SiluV512Path(x, y);
        else if (Vector256.IsHardwareAccelerated) SiluV256Path(x, y);
        else if (Vector128.IsHardwareAccelerated) SiluV128Path(x, y);
        else SiluScalarPath(x, y);
    }

    /// <summary>output[i] = Silu(gate[i]) · up[i] (SwiGLU's gating; the product rounded to float). Runs as the
    /// compiled WebAssembly kernel where a host installed one (<see cref="EmitSiluTimes"/>, same bits).</summary>
    public static unsafe void SiluTimes(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> output)
    {
        CheckLengths(gate, output);
        CheckLengths(up, output);
        fixed (float* g = gate)
        fixed (float* u = up)
        fixed (float* o = output)
            if (Tensors.Wasm.CompiledKernels.TryCall(Tensors.Wasm.Utility.SiluTimes, (int)g, (int)u, (int)o, output.Length) is not null) return;
        Silu(gate, output);
        Kernels.Multiply(output, up);
    }

    /// <summary>y[i] = GeluTanh(x[i]). Same span rules as <see cref="Exp(ReadOnlySpan{float}, Span{float})"/>.</summary>
    public static void GeluTanh(ReadOnlySpan<float> x, Span<float> y)
    {
        CheckLengths(x, y);
        if (Vector512.IsHardwareAccelerated) GeluTanhV512Path(x, y);
        else if (Vector256.IsHardwareAccelerated) GeluTanhV256Path(x, y);
        else if (Vector128.IsHardwareAccelerated) GeluTanhV128Path(x, y);
        else GeluTanhScalarPath(x, y);
    }

    /// <summary>
    /// In-place softmax with a fully specified evaluation order:
    /// <list type="number">
    /// <item>m = max(x) (exact, order-independent).</item>
    /// <item>e[i] = Exp(x[i] - m), the subtraction done in double ((double)x[i] - (double)m), rounded once to float.</item>
    /// <item>sum = float sum of e[i]: 16 partial sums, element i into lane i % 16 (each lane in increasing i,
    /// starting from +0), then lane[j] += lane[j+8] (j &lt; 8), lane[j] += lane[j+4], lane[j] += lane[j+2], lane[j] += lane[j+1].</item>
    /// <item>x[i] = e[i] / sum (a correctly rounded division per element, not a multiply by 1/sum).</item>
    /// </list>
    /// Returns sum (in [1, n]), so log-sum-exp = m + Log(sum). Empty span: returns 0.
    /// If any element is NaN, or max is +inf, or every element is -inf, every output and the return value
    /// are the canonical NaN.
    /// </summary>
    public static float SoftmaxInPlace(Span<float> x)
    {
        if (Vector512.IsHardwareAccelerated) return SoftmaxV512Path(x);
        if (Vector256.IsHardwareAccelerated) return SoftmaxV256Path(x);
        if (Vector128.IsHardwareAccelerated) return SoftmaxV128Path(x);
        return SoftmaxScalarPath(x);
    }

    // ---------------------------------------------------------------- scalar reference paths

    internal static void ExpScalarPath(ReadOnlySpan<float> x, Span<float> y)
    {
        for (int i = 0; i < x.Length; i++)
            y[i] = Exp(x[i]);
    }

    internal static void SiluScalarPath(ReadOnlySpan<float> x, Span<float> y)
    {
        for (int i = 0; i < x.Length; i++)
            y[i] = Silu(x[i]);
    }

    internal static void GeluTanhScalarPath(ReadOnlySpan<float> x, Span<float> y)
    {
        for (int i = 0; i < x.Length; i++)
            y[i] = GeluTanh(x[i]);
    }

    internal static float SoftmaxScalarPath(Span<float> x)
    {
        int n = x.Length;
        if (n == 0) return 0f;
        bool nan = false;
        float m = float.NegativeInfinity;
        for (int i = 0; i < n; i++)
        {
            float v = x[i];
            if (IsNaN(v)) nan = true;
            else if (v > m) m = v;
        }
        if (nan || float.IsInfinity(m))
        {
            x.Fill(CanonicalNaN);
            return CanonicalNaN;
        }
        for (int i = 0; i < n; i++)
            x[i] = ExpShiftedScalar(x[i], m);
        Span<float> lanes = stackalloc float[16];
        lanes.Clear();
        for (int i = 0; i < n; i++)
            lanes[i & 15] += x[i];
        float sum = CombineLanes16(lanes);
        for (int i = 0; i < n; i++)
            x[i] /= sum;
        return sum;
    }

    /// <summary>The project's fixed reduction tree for 16 partial sums, defined once in <see cref="Kernels.ReduceLanes"/>.</summary>
    internal static float CombineLanes16(Span<float> lanes) => Kernels.ReduceLanes(lanes);

    private static void CheckLengths(ReadOnlySpan<float> x, Span<float> y)
    {
        if (x.Length != y.Length)
            throw new ArgumentException("Input and output spans must have the same length.", nameof(y));
    }
}
