// GENERATED from DetMath.Simd128.cs by tools/gen_simd.sh; do not edit by hand.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace MicroLm.Math;

// Vector256 span kernels. Each lane performs exactly the op sequence of the scalar function
// (float -> double widen, the double kernel, double -> float narrow, explicit NaN/-inf selects),
// so results are bit-identical to the scalar path. DetMath.Simd256.cs and DetMath.Simd512.cs are
// generated from this file by tools/gen_simd.sh; edit this one and regenerate.
internal static partial class DetMath
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<double> ClampSmallV256(Vector256<double> t)
    {
        Vector256<double> hi = Vector256.Create(SmallExpLimit);
        Vector256<double> lo = Vector256.Create(-SmallExpLimit);
        t = Vector256.ConditionalSelect(Vector256.GreaterThan(t, hi), hi, t);
        return Vector256.ConditionalSelect(Vector256.LessThan(t, lo), lo, t);
    }

    /// <summary>Lane-wise <see cref="ExpCoreSmall"/>, same operations in the same order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<double> ExpCoreSmallV256(Vector256<double> t)
    {
        Vector256<double> shifter = Vector256.Create(Shifter);
        Vector256<double> kd = t * Vector256.Create(InvLn2) + shifter;
        Vector256<long> kbits = kd.AsInt64();
        kd -= shifter;
        Vector256<double> r = (t - kd * Vector256.Create(Ln2Hi)) - kd * Vector256.Create(Ln2Lo);
        Vector256<double> q = Vector256.Create(E13);
        q = q * r + Vector256.Create(E12);
        q = q * r + Vector256.Create(E11);
        q = q * r + Vector256.Create(E10);
        q = q * r + Vector256.Create(E9);
        q = q * r + Vector256.Create(E8);
        q = q * r + Vector256.Create(E7);
        q = q * r + Vector256.Create(E6);
        q = q * r + Vector256.Create(E5);
        q = q * r + Vector256.Create(E4);
        q = q * r + Vector256.Create(E3);
        q = q * r + Vector256.Create(E2);
        q = q * r + Vector256.Create(E1);
        Vector256<double> p = Vector256.Create(1.0) + r * q;
        Vector256<double> scale = ((kbits - Vector256.Create(ShifterBits) + Vector256.Create(1023L)) << 52).AsDouble();
        return p * scale;
    }

    internal static void ExpShiftedV256Path(ReadOnlySpan<float> x, Span<float> y, double shift)
    {
        int n = x.Length;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        Vector256<double> s = Vector256.Create(shift);
        Vector256<float> nan = Vector256.Create(CanonicalNaN);
        int i = 0;
        for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
        {
            Vector256<float> v = Vector256.LoadUnsafe(ref xr, (nuint)i);
            (Vector256<double> lo, Vector256<double> hi) = Vector256.Widen(v);
            lo = ExpCoreSmallV256(ClampSmallV256(lo - s));
            hi = ExpCoreSmallV256(ClampSmallV256(hi - s));
            Vector256<float> res = Vector256.Narrow(lo, hi);
            res = Vector256.ConditionalSelect(Vector256.Equals(v, v), res, nan);
            res.StoreUnsafe(ref yr, (nuint)i);
        }
        for (; i < n; i++)
            y[i] = ExpShiftedScalar(x[i], shift);
    }

    internal static void ExpV256Path(ReadOnlySpan<float> x, Span<float> y) => ExpShiftedV256Path(x, y, 0.0);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<double> SiluCoreV256(Vector256<double> xd)
        => xd / (Vector256.Create(1.0) + ExpCoreSmallV256(ClampSmallV256(-xd)));

    internal static void SiluV256Path(ReadOnlySpan<float> x, Span<float> y)
    {
        int n = x.Length;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        Vector256<float> nan = Vector256.Create(CanonicalNaN);
        Vector256<float> negInf = Vector256.Create(float.NegativeInfinity);
        Vector256<float> negZero = Vector256.Create(-0f);
        int i = 0;
        for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
        {
            Vector256<float> v = Vector256.LoadUnsafe(ref xr, (nuint)i);
            (Vector256<double> lo, Vector256<double> hi) = Vector256.Widen(v);
            Vector256<float> res = Vector256.Narrow(SiluCoreV256(lo), SiluCoreV256(hi));
            res = Vector256.ConditionalSelect(Vector256.Equals(v, negInf), negZero, res);
            res = Vector256.ConditionalSelect(Vector256.Equals(v, v), res, nan);
            res.StoreUnsafe(ref yr, (nuint)i);
        }
        for (; i < n; i++)
            y[i] = Silu(x[i]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<double> GeluTanhCoreV256(Vector256<double> xd)
    {
        Vector256<double> inner = xd + Vector256.Create(GeluCubic) * ((xd * xd) * xd);
        Vector256<double> e = ExpCoreSmallV256(ClampSmallV256(inner * Vector256.Create(-GeluTwoC)));
        return xd / (Vector256.Create(1.0) + e);
    }

    internal static void GeluTanhV256Path(ReadOnlySpan<float> x, Span<float> y)
    {
        int n = x.Length;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        Vector256<float> nan = Vector256.Create(CanonicalNaN);
        Vector256<float> negInf = Vector256.Create(float.NegativeInfinity);
        Vector256<float> negZero = Vector256.Create(-0f);
        int i = 0;
        for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
        {
            Vector256<float> v = Vector256.LoadUnsafe(ref xr, (nuint)i);
            (Vector256<double> lo, Vector256<double> hi) = Vector256.Widen(v);
            Vector256<float> res = Vector256.Narrow(GeluTanhCoreV256(lo), GeluTanhCoreV256(hi));
            res = Vector256.ConditionalSelect(Vector256.Equals(v, negInf), negZero, res);
            res = Vector256.ConditionalSelect(Vector256.Equals(v, v), res, nan);
            res.StoreUnsafe(ref yr, (nuint)i);
        }
        for (; i < n; i++)
            y[i] = GeluTanh(x[i]);
    }

    internal static float SoftmaxV256Path(Span<float> x)
    {
        int n = x.Length;
        if (n == 0) return 0f;
        ref float xr = ref MemoryMarshal.GetReference(x);
        int i = 0;

        // 1. max (order-independent) and NaN detection.
        Vector256<float> mv = Vector256.Create(float.NegativeInfinity);
        Vector256<float> bad = Vector256<float>.Zero;
        for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
        {
            Vector256<float> v = Vector256.LoadUnsafe(ref xr, (nuint)i);
            mv = Vector256.ConditionalSelect(Vector256.GreaterThan(v, mv), v, mv);
            bad |= ~Vector256.Equals(v, v);
        }
        bool nan = bad.AsInt32() != Vector256<int>.Zero;
        float m = float.NegativeInfinity;
        for (int j = 0; j < Vector256<float>.Count; j++)
            if (mv.GetElement(j) > m) m = mv.GetElement(j);
        for (; i < n; i++)
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

        // 2. e_i = exp(x_i - max) (subtraction in double, exact for all but huge gaps).
        ExpShiftedV256Path(x, x, m);

        // 3. sum in the project's fixed order: element i into lane i % 16, lanes combined pairwise.
        const int W = 16;
        int a = W / Vector256<float>.Count;
        Span<Vector256<float>> acc = stackalloc Vector256<float>[a];
        acc.Clear();
        for (i = 0; i <= n - W; i += W)
            for (int j = 0; j < a; j++)
                acc[j] += Vector256.LoadUnsafe(ref xr, (nuint)(i + j * Vector256<float>.Count));
        Span<float> lanes = stackalloc float[W];
        for (int j = 0; j < a; j++)
            acc[j].CopyTo(lanes.Slice(j * Vector256<float>.Count));
        for (; i < n; i++)
            lanes[i & (W - 1)] += x[i];
        float sum = CombineLanes16(lanes);

        // 4. y_i = e_i / sum (correctly rounded division per element).
        Vector256<float> sv = Vector256.Create(sum);
        for (i = 0; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            (Vector256.LoadUnsafe(ref xr, (nuint)i) / sv).StoreUnsafe(ref xr, (nuint)i);
        for (; i < n; i++)
            x[i] /= sum;
        return sum;
    }
}
