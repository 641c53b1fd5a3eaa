using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace MicroLm.Math;

// Vector128 span kernels. Each lane performs exactly the op sequence of the scalar function
// (float -> double widen, the double kernel, double -> float narrow, explicit NaN/-inf selects),
// so results are bit-identical to the scalar path. DetMath.Simd256.cs and DetMath.Simd512.cs are
// generated from this file by tools/gen_simd.sh; edit this one and regenerate.
internal static partial class DetMath
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<double> ClampSmallV128(Vector128<double> t)
    {
        Vector128<double> hi = Vector128.Create(SmallExpLimit);
        Vector128<double> lo = Vector128.Create(-SmallExpLimit);
        t = Vector128.ConditionalSelect(Vector128.GreaterThan(t, hi), hi, t);
        return Vector128.ConditionalSelect(Vector128.LessThan(t, lo), lo, t);
    }

    /// <summary>Lane-wise <see cref="ExpCoreSmall"/>, same operations in the same order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<double> ExpCoreSmallV128(Vector128<double> t)
    {
        Vector128<double> shifter = Vector128.Create(Shifter);
        Vector128<double> kd = t * Vector128.Create(InvLn2) + shifter;
        Vector128<long> kbits = kd.AsInt64();
        kd -= shifter;
        Vector128<double> r = (t - kd * Vector128.Create(Ln2Hi)) - kd * Vector128.Create(Ln2Lo);
        Vector128<double> q = Vector128.Create(E13);
        q = q * r + Vector128.Create(E12);
        q = q * r + Vector128.Create(E11);
        q = q * r + Vector128.Create(E10);
        q = q * r + Vector128.Create(E9);
        q = q * r + Vector128.Create(E8);
        q = q * r + Vector128.Create(E7);
        q = q * r + Vector128.Create(E6);
        q = q * r + Vector128.Create(E5);
        q = q * r + Vector128.Create(E4);
        q = q * r + Vector128.Create(E3);
        q = q * r + Vector128.Create(E2);
        q = q * r + Vector128.Create(E1);
        Vector128<double> p = Vector128.Create(1.0) + r * q;
        Vector128<double> scale = ((kbits - Vector128.Create(ShifterBits) + Vector128.Create(1023L)) << 52).AsDouble();
        return p * scale;
    }

    internal static void ExpShiftedV128Path(ReadOnlySpan<float> x, Span<float> y, double shift)
    {
        int n = x.Length;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        Vector128<double> s = Vector128.Create(shift);
        Vector128<float> nan = Vector128.Create(CanonicalNaN);
        int i = 0;
        for (; i <= n - Vector128<float>.Count; i += Vector128<float>.Count)
        {
            Vector128<float> v = Vector128.LoadUnsafe(ref xr, (nuint)i);
            (Vector128<double> lo, Vector128<double> hi) = Vector128.Widen(v);
            lo = ExpCoreSmallV128(ClampSmallV128(lo - s));
            hi = ExpCoreSmallV128(ClampSmallV128(hi - s));
            Vector128<float> res = Vector128.Narrow(lo, hi);
            res = Vector128.ConditionalSelect(Vector128.Equals(v, v), res, nan);
            res.StoreUnsafe(ref yr, (nuint)i);
        }
        for (; i < n; i++)
            y[i] = ExpShiftedScalar(x[i], shift);
    }

    internal static void ExpV128Path(ReadOnlySpan<float> x, Span<float> y) => ExpShiftedV128Path(x, y, 0.0);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<double> SiluCoreV128(Vector128<double> xd)
        => xd / (Vector128.Create(1.0) + ExpCoreSmallV128(ClampSmallV128(-xd)));

    internal static void SiluV128Path(ReadOnlySpan<float> x, Span<float> y)
    {
        int n = x.Length;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        Vector128<float> nan = Vector128.Create(CanonicalNaN);
        Vector128<float> negInf = Vector128.Create(float.NegativeInfinity);
        Vector128<float> negZero = Vector128.Create(-0f);
        int i = 0;
        for (; i <= n - Vector128<float>.Count; i += Vector128<float>.Count)
        {
            Vector128<float> v = Vector128.LoadUnsafe(ref xr, (nuint)i);
            (Vector128<double> lo, Vector128<double> hi) = Vector128.Widen(v);
            Vector128<float> res = Vector128.Narrow(SiluCoreV128(lo), SiluCoreV128(hi));
            res = Vector128.ConditionalSelect(Vector128.Equals(v, negInf), negZero, res);
            res = Vector128.ConditionalSelect(Vector128.Equals(v, v), res, nan);
            res.StoreUnsafe(ref yr, (nuint)i);
        }
        for (; i < n; i++)
            y[i] = Silu(x[i]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<double> GeluTanhCoreV128(Vector128<double> xd)
    {
        Vector128<double> inner = xd + Vector128.Create(GeluCubic) * ((xd * xd) * xd);
        Vector128<double> e = ExpCoreSmallV128(ClampSmallV128(inner * Vector128.Create(-GeluTwoC)));
        return xd / (Vector128.Create(1.0) + e);
    }

    internal static void GeluTanhV128Path(ReadOnlySpan<float> x, Span<float> y)
    {
        int n = x.Length;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        Vector128<float> nan = Vector128.Create(CanonicalNaN);
        Vector128<float> negInf = Vector128.Create(float.NegativeInfinity);
        Vector128<float> negZero = Vector128.Create(-0f);
        int i = 0;
        for (; i <= n - Vector128<float>.Count; i += Vector128<float>.Count)
        {
            Vector128<float> v = Vector128.LoadUnsafe(ref xr, (nuint)i);
            (Vector128<double> lo, Vector128<double> hi) = Vector128.Widen(v);
            Vector128<float> res = Vector128.Narrow(GeluTanhCoreV128(lo), GeluTanhCoreV128(hi));
            res = Vector128.ConditionalSelect(Vector128.Equals(v, negInf), negZero, res);
            res = Vector128.ConditionalSelect(Vector128.Equals(v, v), res, nan);
            res.StoreUnsafe(ref yr, (nuint)i);
        }
        for (; i < n; i++)
            y[i] = GeluTanh(x[i]);
    }

    internal static float SoftmaxV128Path(Span<float> x)
    {
        int n = x.Length;
        if (n == 0) return 0f;
        ref float xr = ref MemoryMarshal.GetReference(x);
        int i = 0;

        // 1. max (order-independent) and NaN detection.
        Vector128<float> mv = Vector128.Create(float.NegativeInfinity);
        Vector128<float> bad = Vector128<float>.Zero;
        for (; i <= n - Vector128<float>.Count; i += Vector128<float>.Count)
        {
            Vector128<float> v = Vector128.LoadUnsafe(ref xr, (nuint)i);
            mv = Vector128.ConditionalSelect(Vector128.GreaterThan(v, mv), v, mv);
            bad |= ~Vector128.Equals(v, v);
        }
        bool nan = bad.AsInt32() != Vector128<int>.Zero;
        float m = float.NegativeInfinity;
        for (int j = 0; j < Vector128<float>.Count; j++)
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
        ExpShiftedV128Path(x, x, m);

        // 3. sum in the project's fixed order: element i into lane i % 16, lanes combined pairwise.
        const int W = 16;
        int a = W / Vector128<float>.Count;
        Span<Vector128<float>> acc = stackalloc Vector128<float>[a];
        acc.Clear();
        for (i = 0; i <= n - W; i += W)
            for (int j = 0; j < a; j++)
                acc[j] += Vector128.LoadUnsafe(ref xr, (nuint)(i + j * Vector128<float>.Count));
        Span<float> lanes = stackalloc float[W];
        for (int j = 0; j < a; j++)
            acc[j].CopyTo(lanes.Slice(j * Vector128<float>.Count));
        for (; i < n; i++)
            lanes[i & (W - 1)] += x[i];
        float sum = CombineLanes16(lanes);

        // 4. y_i = e_i / sum (correctly rounded division per element).
        Vector128<float> sv = Vector128.Create(sum);
        for (i = 0; i <= n - Vector128<float>.Count; i += Vector128<float>.Count)
            (Vector128.LoadUnsafe(ref xr, (nuint)i) / sv).StoreUnsafe(ref xr, (nuint)i);
        for (; i < n; i++)
            x[i] /= sum;
        return sum;
    }
}
