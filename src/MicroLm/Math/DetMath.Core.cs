namespace MicroLm.Math;

// Double-precision kernels shared by every public function.
//
// Every kernel is a fixed sequence of IEEE 754 binary64 +, -, *, / (each exactly rounded,
// round-to-nearest-even) plus integer/bit manipulation, so it produces the same bits on
// every platform. No libm, no FMA (a fused multiply-add rounds once instead of twice and
// would change the bits; .NET never contracts a*b+c on its own, so writing `a * b + c`
// is safe).
//
// All polynomial coefficients are Taylor coefficients (exact rationals such as 1/n!,
// 2/(2n+1), 1/(2n+1)!!) rounded once to the nearest double; constants (ln 2, pi/2 splits,
// 2/sqrt(pi), ...) come from mpmath at 200 digits. Both are produced and checked (truncation
// error of every series on its reduced range) by tools/derive_math_constants.py.
internal static partial class DetMath
{
    /// <summary>The one NaN every float function returns: bit pattern 0xFFC00000 (== <c>float.NaN</c> in .NET).</summary>
    public const int CanonicalNaNBits = unchecked((int)0xFFC00000);

    /// <summary>The one NaN every double function returns: bit pattern 0xFFF8000000000000 (== <c>double.NaN</c> in .NET).</summary>
    public const long CanonicalNaNBitsD = unchecked((long)0xFFF8000000000000UL);

    internal static readonly float CanonicalNaN = BitConverter.Int32BitsToSingle(CanonicalNaNBits);
    internal static readonly double CanonicalNaND = BitConverter.Int64BitsToDouble(CanonicalNaNBitsD);

    // ---- exp ----------------------------------------------------------------------------
    // 1.5 * 2^52: adding it to |v| < 2^51 rounds v to the nearest integer, which then sits in
    // the low mantissa bits (bits(v + Shifter) - bits(Shifter) == round(v)).
    internal const double Shifter = 6755399441055744.0;
    internal const long ShifterBits = 0x4338000000000000L;
    internal const double InvLn2 = 1.4426950408889634;
    // Cody–Waite split of ln 2: Ln2Hi has 42 significant bits, so k * Ln2Hi is exact for |k| < 2^11.
    internal const double Ln2Hi = 0.6931471805598903;
    internal const double Ln2Lo = 5.497923018708371e-14;
    internal const double HalfLn2 = 0.34657359027997264;

    // Taylor coefficients 1/n!, n = 1..13. Truncation after r^13 on |r| <= ln2/2: 2^-57.2 relative.
    internal const double E1 = 1.0;
    internal const double E2 = 0.5;
    internal const double E3 = 0.16666666666666666;
    internal const double E4 = 0.041666666666666664;
    internal const double E5 = 0.008333333333333333;
    internal const double E6 = 0.001388888888888889;
    internal const double E7 = 0.0001984126984126984;
    internal const double E8 = 2.48015873015873e-05;
    internal const double E9 = 2.7557319223985893e-06;
    internal const double E10 = 2.755731922398589e-07;
    internal const double E11 = 2.505210838544172e-08;
    internal const double E12 = 2.08767569878681e-09;
    internal const double E13 = 1.6059043836821613e-10;

    /// <summary>Clamp bound for <see cref="ExpCoreSmall"/>; e^±200 is far outside float range.</summary>
    internal const double SmallExpLimit = 200.0;

    /// <summary>(e^r - 1) / r as a Horner polynomial, |r| &lt;= ln2/2 (+ rounding slack).</summary>
    internal static double ExpM1OverR(double r)
    {
        double q = E13;
        q = q * r + E12;
        q = q * r + E11;
        q = q * r + E10;
        q = q * r + E9;
        q = q * r + E8;
        q = q * r + E7;
        q = q * r + E6;
        q = q * r + E5;
        q = q * r + E4;
        q = q * r + E3;
        q = q * r + E2;
        q = q * r + E1;
        return q;
    }

    /// <summary>
    /// e^t for |t| &lt;= 200 (caller clamps; NaN gives garbage that the caller replaces).
    /// t = k ln2 + r (k = round(t/ln2), Cody–Waite), e^r = 1 + r*Q(r), result = e^r * 2^k with
    /// 2^k built from bits. Relative error ~2^-52. The SIMD paths replicate this op for op.
    /// </summary>
    internal static double ExpCoreSmall(double t)
    {
        double kd = t * InvLn2 + Shifter;
        long kbits = BitConverter.DoubleToInt64Bits(kd);
        kd -= Shifter;
        double r = (t - kd * Ln2Hi) - kd * Ln2Lo;
        double p = 1.0 + r * ExpM1OverR(r);
        double scale = BitConverter.Int64BitsToDouble((kbits - ShifterBits + 1023L) << 52);
        return p * scale;
    }

    internal static double ClampSmall(double t)
    {
        if (t > SmallExpLimit) t = SmallExpLimit;
        if (t < -SmallExpLimit) t = -SmallExpLimit;
        return t;
    }

    /// <summary>2^n as a double for -1022 &lt;= n &lt;= 1023 (exact, from bits).</summary>
    internal static double Pow2(int n) => BitConverter.Int64BitsToDouble((long)(n + 1023) << 52);

    // ---- log ----------------------------------------------------------------------------
    internal const double Sqrt2 = 1.4142135623730951;
    // 2/(2n+1), n = 1..10: log(m) = 2 atanh(s) = 2s + s z (2/3 + 2z/5 + ...), z = s^2,
    // |s| <= (sqrt2-1)/(sqrt2+1); truncation after z^10: 2^-60 relative.
    internal const double L1 = 0.6666666666666666;
    internal const double L2 = 0.4;
    internal const double L3 = 0.2857142857142857;
    internal const double L4 = 0.2222222222222222;
    internal const double L5 = 0.18181818181818182;
    internal const double L6 = 0.15384615384615385;
    internal const double L7 = 0.13333333333333333;
    internal const double L8 = 0.11764705882352941;
    internal const double L9 = 0.10526315789473684;
    internal const double L10 = 0.09523809523809523;

    /// <summary>ln(x) for finite x &gt; 0 (normal or subnormal).</summary>
    internal static double LogCore(double x)
    {
        long bits = BitConverter.DoubleToInt64Bits(x);
        int e = (int)(bits >> 52) - 1023;
        if (e == -1023)
        {
            // Subnormal: scale by 2^54 (exact) and renormalise.
            bits = BitConverter.DoubleToInt64Bits(x * 18014398509481984.0);
            e = (int)(bits >> 52) - 1023 - 54;
        }
        double m = BitConverter.Int64BitsToDouble((bits & 0x000FFFFFFFFFFFFFL) | 0x3FF0000000000000L);
        if (m > Sqrt2)
        {
            m *= 0.5;
            e += 1;
        }
        double f = m - 1.0;              // exact (Sterbenz)
        double s = f / (2.0 + f);
        double z = s * s;
        double p = L10;
        p = p * z + L9;
        p = p * z + L8;
        p = p * z + L7;
        p = p * z + L6;
        p = p * z + L5;
        p = p * z + L4;
        p = p * z + L3;
        p = p * z + L2;
        p = p * z + L1;
        double logm = (s + s) + (s * z) * p;
        double ed = e;
        return ed * Ln2Hi + (logm + ed * Ln2Lo);
    }

    // ---- sin / cos ----------------------------------------------------------------------
    // (-1)^n/(2n+1)!, n = 1..8: truncation after r^17 on |r| <= pi/4: 2^-62.9 relative.
    internal const double S1 = -0.16666666666666666;
    internal const double S2 = 0.008333333333333333;
    internal const double S3 = -0.0001984126984126984;
    internal const double S4 = 2.7557319223985893e-06;
    internal const double S5 = -2.505210838544172e-08;
    internal const double S6 = 1.6059043836821613e-10;
    internal const double S7 = -7.647163731819816e-13;
    internal const double S8 = 2.8114572543455206e-15;
    // (-1)^n/(2n)!, n = 1..9: truncation after r^18 on |r| <= pi/4: 2^-67.5 relative.
    internal const double C1 = -0.5;
    internal const double C2 = 0.041666666666666664;
    internal const double C3 = -0.001388888888888889;
    internal const double C4 = 2.48015873015873e-05;
    internal const double C5 = -2.755731922398589e-07;
    internal const double C6 = 2.08767569878681e-09;
    internal const double C7 = -1.1470745597729725e-11;
    internal const double C8 = 4.779477332387385e-14;
    internal const double C9 = -1.5619206968586225e-16;

    /// <summary>sin(r), |r| &lt;= ~pi/4, r != 0.</summary>
    internal static double SinPoly(double r)
    {
        double z = r * r;
        double p = S8;
        p = p * z + S7;
        p = p * z + S6;
        p = p * z + S5;
        p = p * z + S4;
        p = p * z + S3;
        p = p * z + S2;
        p = p * z + S1;
        return r + (r * z) * p;
    }

    /// <summary>cos(r), |r| &lt;= ~pi/4.</summary>
    internal static double CosPoly(double r)
    {
        double z = r * r;
        double p = C9;
        p = p * z + C8;
        p = p * z + C7;
        p = p * z + C6;
        p = p * z + C5;
        p = p * z + C4;
        p = p * z + C3;
        p = p * z + C2;
        p = p * z + C1;
        return 1.0 + z * p;
    }

    // ---- erf / erfc ---------------------------------------------------------------------
    internal const double TwoOverSqrtPi = 1.1283791670955126;
    internal const double SqrtTwoOverPi = 0.7978845608028654; // (2/sqrt(pi)) / sqrt(2)

    // 1/(2n+1)!!, n = 0..32. erf(a) = (2a/sqrt(pi)) e^{-a^2} sum_n (2a^2)^n/(2n+1)!! (all terms
    // positive, no cancellation); truncation after n = 32 at a = 2: 2^-63.8 relative.
    private static readonly double[] ErfSeries =
    [
        1.0, 0.3333333333333333, 0.06666666666666667, 0.009523809523809525, 0.0010582010582010583,
        9.62000962000962e-05, 7.4000074000074e-06, 4.9333382666716e-07, 2.901963686277412e-08,
        1.5273493085670588e-09, 7.273091945557423e-11, 3.1622138893727926e-12, 1.264885555749117e-13,
        4.684761317589322e-15, 1.6154349370997664e-16, 5.211080442257311e-18, 1.5791152855325184e-19,
        4.5117579586643385e-21, 1.2193940428822536e-22, 3.1266513920057783e-24, 7.625979004892143e-26,
        1.7734834895098008e-27, 3.9410744211328905e-29, 8.38526472581466e-31, 1.7112785154723796e-32,
        3.3554480695536855e-34, 6.33103409349752e-36, 1.1510971079086399e-37, 2.019468610366035e-39,
        3.4228281531627713e-41, 5.611193693709461e-43, 8.906656656681684e-45, 1.3702548702587206e-46,
    ];

    /// <summary>erf(a) for 0 &lt;= a, a^2 = a2 &lt; 4; pref = 2a/sqrt(pi).</summary>
    internal static double ErfSmallCore(double pref, double a2)
    {
        double w = a2 + a2;
        // Series length by range so the truncation stays below 2^-60 (tools/derive_math_constants.py):
        // a^2 < 0.25: n <= 12, a^2 < 1: n <= 19, a^2 < 4: n <= 32.
        int top = a2 < 0.25 ? 12 : a2 < 1.0 ? 19 : 32;
        double[] c = ErfSeries;
        double s = c[top];
        for (int n = top - 1; n >= 0; n--)
            s = s * w + c[n];
        return (pref * ExpCoreSmall(-a2)) * s;
    }

    /// <summary>
    /// erfc(a) for a^2 = a2 in [4, 200]; pref = 2a/sqrt(pi). Uses the even (Jacobi) continued fraction
    /// erfc(a) = (2a e^{-a^2}/sqrt(pi)) / (t+1 - 1*2/(t+5 - 3*4/(t+9 - ...))), t = 2a^2, evaluated
    /// bottom-up. Depth by range, each with truncation below 2^-60 (tools/derive_math_constants.py):
    /// a &lt; 2.5: 36, a &lt; 3: 26, a &lt; 4: 20, else 14.
    /// </summary>
    internal static double ErfcLargeCore(double pref, double a2)
    {
        int depth = a2 < 6.25 ? 36 : a2 < 9.0 ? 26 : a2 < 16.0 ? 20 : 14;
        double t = a2 + a2;
        double f = t + (4 * depth + 1);
        for (int k = depth; k >= 1; k--)
            f = (t + (4 * k - 3)) - ((double)((2 * k - 1) * (2 * k)) / f);
        return (pref * ExpCoreSmall(-a2)) / f;
    }

    internal static float CopySignBit(float magnitude, float signSource)
    {
        int m = BitConverter.SingleToInt32Bits(magnitude) & 0x7FFFFFFF;
        int s = BitConverter.SingleToInt32Bits(signSource) & unchecked((int)0x80000000);
        return BitConverter.Int32BitsToSingle(m | s);
    }

    internal static bool IsNaN(float x) => float.IsNaN(x);
    internal static bool IsNaN(double x) => double.IsNaN(x);
}
