// GENERATED from DetMath.Simd128.cs by tools/gen_simd.sh; do not edit by hand.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace MicroLm.Math;

// Vector512 span kernels. Each lane performs exactly the op sequence of the scalar function
// (float -> double widen, the double kernel, double -> float narrow, explicit NaN/-inf selects),
// so results are bit-identical to the scalar path. DetMath.Simd256.cs and DetMath.Simd512.cs are
// generated from this file by tools/gen_simd.sh; edit this one and regenerate.
internal static partial class DetMath
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<double> ClampSmallV512(Vector512<double> t)
    {
        Vector512<double> hi = Vector512.Create(SmallExpLimit);
        Vector512<double> lo = Vector512.Create(-SmallExpLimit);
        t = Vector512.ConditionalSelect(Vector512.GreaterThan(t, hi), hi, t);
        return Vector512.ConditionalSelect(Vector512.LessThan(t, lo), lo, t);
    }

    /// <summary>Lane-wise <see cref="ExpCoreSmall"/>, same operations in the same order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<double> ExpCoreSmallV512(Vector512<double> t)
    {
        Vector512<double> shifter = Vector512.Create(Shifter);
        Vector512<double> kd = t * Vector512.Create(InvLn2) + shifter;
        Vector512<long> kbits = kd.AsInt64();
        kd -= shifter;
        Vector512<double> r = (t - kd * Vector512.Create(Ln2Hi)) - kd * Vector512.Create(Ln2Lo);
        Vector512<double> q = Vector512.Create(E13);
        q = q * r + Vector512.Create(E12);
        q = q * r + Vector512.Create(E11);
        q = q * r + Vector512.Create(E10);
        q = q * r + Vector512.Create(E9);
        q = q * r + Vector512.Create(E8);
        q = q * r + Vector512.Create(E7);
        q = q * r + Vector512.Create(E6);
        q = q * r + Vector512.Create(E5);
        q = q * r + Vector512.Create(E4);
        q = q * r + Vector512.Create(E3);
        q = q * r + Vector512.Create(E2);
        q = q * r + Vector512.Create(E1);
        Vector512<double> p = Vector512.Create(1.0) + r * q;
        Vector512<double> scale = ((kbits - Vector512.Create(ShifterBits) + Vector512.Create(1023L)) << 52).AsDouble();
        return p * scale;
    }

    internal static void ExpShiftedV512Path(ReadOnlySpan<float> x, Span<float> y, double shift)
    {
        int n = x.Length;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        Vector512<double> s = Vector512.Create(shift);
        Vector512<float> nan = Vector512.Create(CanonicalNaN);
        int i = 0;
        for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
        {
            Vector512<float> v = Vector512.LoadUnsafe(ref xr, (nuint)i);
            (Vector512<double> lo, Vector512<double> hi) = Vector512.Widen(v);
            lo = ExpCoreSmallV512(ClampSmallV512(lo - s));
            hi = ExpCoreSmallV512(ClampSmallV512(hi - s));
            Vector512<float> res = Vector512.Narrow(lo, hi);
            res = Vector512.ConditionalSelect(Vector512.Equals(v, v), res, nan);
            res.StoreUnsafe(ref yr, (nuint)i);
        }
        for (; i < n; i++)
            y[i] = ExpShiftedScalar(x[i], shift);
    }

    internal static void ExpV512Path(ReadOnlySpan<float> x, Span<float> y) => ExpShiftedV512Path(x, y, 0.0);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<double> SiluCoreV512(Vector512<double> xd)
        => xd / (Vector512.Create(1.0) + ExpCoreSmallV512(ClampSmallV512(-xd)));

    internal static void SiluV512Path(ReadOnlySpan<float> x, Span<float> y)
    {
        int n = x.Length;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        Vector512<float> nan = Vector512.Create(CanonicalNaN);
        Vector512<float> negInf = Vector512.Create(float.NegativeInfinity);
        Vector512<float> negZero = Vector512.Create(-0f);
        int i = 0;
        for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
        {
            Vector512<float> v = Vector512.LoadUnsafe(ref xr, (nuint)i);
            (Vector512<double> lo, Vector512<double> hi) = Vector512.Widen(v);
            Vector512<float> res = Vector512.Narrow(SiluCoreV512(lo), SiluCoreV512(hi));
            res = Vector512.ConditionalSelect(Vector512.Equals(v, negInf), negZero, res);
            res = Vector512.ConditionalSelect(Vector512.Equals(v, v), res, nan);
            res.StoreUnsafe(ref yr, (nuint)i);
        }
        for (; i < n; i++)
            y[i] = Silu(x[i]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<double> GeluTanhCoreV512(Vector512<double> xd)
    {
        Vector512<double> inner = xd + Vector512.Create(GeluCubic) * ((xd * xd) * xd);
        Vector512<double> e = ExpCoreSmallV512(ClampSmallV512(inner * Vector512.Create(-GeluTwoC)));
        return xd / (Vector512.Create(1.0) + e);
    }

    internal static void GeluTanhV512Path(ReadOnlySpan<float> x, Span<float> y)
    {
        int n = x.Length;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        Vector512<float> nan = Vector512.Create(CanonicalNaN);
        Vector512<float> negInf = Vector512.Create(float.NegativeInfinity);
        Vector512<float> negZero = Vector512.Create(-0f);
        int i = 0;
        for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
        {
            Vector512<float> v = Vector512.LoadUnsafe(ref xr, (nuint)i);
            (Vector512<double> lo, Vector512<double> hi) = Vector512.Widen(v);
            Vector512<float> res = Vector512.Narrow(GeluTanhCoreV512(lo), GeluTanhCoreV512(hi));
            res = Vector512.ConditionalSelect(Vector512.Equals(v, negInf), negZero, res);
            res = Vector512.ConditionalSelect(Vector512.Equals(v, v), res, nan);
            res.StoreUnsafe(ref yr, (nuint)i);
        }
        for (; i < n; i++)
            y[i] = GeluTanh(x[i]);
    }

    internal static float SoftmaxV512Path(Span<float> x)
    {
        int n = x.Length;
        if (n == 0) return 0f;
        ref float xr = ref MemoryMarshal.GetReference(x);
        int i = 0;

        // 1. max (order-independent) and NaN detection.
        Vector512<float> mv = Vector512.Create(float.NegativeInfinity);
        Vector512<float> bad = Vector512<float>.Zero;
        for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
        {
            Vector512<float> v = Vector512.LoadUnsafe(ref xr, (nuint)i);
            mv = Vector512.ConditionalSelect(Vector512.GreaterThan(v, mv), v, mv);
            bad |= ~Vector512.Equals(v, v);
        }
        bool nan = bad.AsInt32() != Vector512<int>.Zero;
        float m = float.NegativeInfinity;
        for (int j = 0; j < Vector512<float>.Count; j++)
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
        ExpShiftedV512Path(x, x, m);

        // 3. sum in the project's fixed order: element i into lane i % 16, lanes combined pairwise.
        const int W = 16;
        int a = W / Vector512<float>.Count;
        Span<Vector512<float>> acc = stackalloc Vector512<float>[a];
        acc.Clear();
        for (i = 0; i <= n - W; i += W)
            for (int j = 0; j < a; j++)
                acc[j] += Vector512.LoadUnsafe(ref xr, (nuint)(i + j * Vector512<float>.Count));
        Span<float> lanes = stackalloc float[W];
        for (int j = 0; j < a; j++)
            acc[j].CopyTo(lanes.Slice(j * Vector512<float>.Count));
        for (; i < n; i++)
            lanes[i & (W - 1)] += x[i];
        float sum = CombineLanes16(lanes);

        // 4. y_i = e_i / sum (correctly rounded division per element).
        Vector512<float> sv = Vector512.Create(sum);
        for (i = 0; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            (Vector512.LoadUnsafe(ref xr, (nuint)i) / sv).StoreUnsafe(ref xr, (nuint)i);
        for (; i < n; i++)
            x[i] /= sum;
        return sum;
    }
}
