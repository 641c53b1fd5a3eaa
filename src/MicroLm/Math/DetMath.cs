namespace MicroLm.Math;

/// <summary>
/// Deterministic elementary functions: the same bits on every platform, SIMD width and thread count.
/// Built only from IEEE 754 +, -, *, /, sqrt-free bit manipulation and conversions (each exactly
/// rounded), never libm, never FMA. Float functions compute in double and round once to float, so
/// they are correctly rounded except in rare near-halfway cases (measured max error ~0.5 ulp, see
/// docs/math.md). Every NaN result is the canonical NaN <see cref="CanonicalNaNBits"/> (0xFFC00000).
/// </summary>
internal static partial class DetMath
{
    // ---------------------------------------------------------------- exp / log / pow

    /// <summary>e^x. Overflows to +inf for x &gt; ~88.7228, underflows through subnormals to +0 below ~-103.97.</summary>
    public static float Exp(float x) => ExpShiftedScalar(x, 0.0);

    /// <summary>e^(x - shift) computed as exp((double)x - shift) — the exact per-element op sequence of every Exp/Softmax path.</summary>
    internal static float ExpShiftedScalar(float x, double shift)
    {
        if (IsNaN(x)) return CanonicalNaN;
        return (float)ExpCoreSmall(ClampSmall(x - shift));
    }

    /// <summary>e^x in double (≈1 ulp). Overflow to +inf above ~709.78, gradual underflow to +0 below ~-745.13.</summary>
    public static double ExpD(double x)
    {
        if (IsNaN(x)) return CanonicalNaND;
        if (x > 1000.0) x = 1000.0;
        if (x < -1000.0) x = -1000.0;
        double kd = x * InvLn2 + Shifter;
        int k = (int)(BitConverter.DoubleToInt64Bits(kd) - ShifterBits);
        kd -= Shifter;
        double r = (x - kd * Ln2Hi) - kd * Ln2Lo;
        double p = 1.0 + r * ExpM1OverR(r);
        // 2^k = 2^k1 * 2^k2 with both factors normal: p*2^k1 is exact, the second product rounds once
        // (to +inf on overflow, to a correctly rounded subnormal/zero on underflow).
        int k1 = k / 2;
        return (p * Pow2(k1)) * Pow2(k - k1);
    }

    /// <summary>Natural logarithm. Log(±0) = -inf, Log(x &lt; 0) = NaN, Log(+inf) = +inf.</summary>
    public static float Log(float x)
    {
        if (IsNaN(x) || x < 0f) return CanonicalNaN;
        if (x == 0f) return float.NegativeInfinity;
        if (x == float.PositiveInfinity) return x;
        return (float)LogCore(x);
    }

    /// <summary>Natural logarithm in double (≈1–2 ulp).</summary>
    public static double LogD(double x)
    {
        if (IsNaN(x) || x < 0.0) return CanonicalNaND;
        if (x == 0.0) return double.NegativeInfinity;
        if (x == double.PositiveInfinity) return x;
        return LogCore(x);
    }

    /// <summary>
    /// x^y with IEEE 754 / C99 special cases (pow(x, ±0) = 1, pow(1, y) = 1 even for NaN, pow(-1, ±inf) = 1,
    /// signed zeros/infinities for odd integer y, NaN for negative x with non-integer y).
    /// Computed as exp(y * ln|x|) in double, rounded once.
    /// </summary>
    public static float Pow(float x, float y)
    {
        if (y == 0f || x == 1f) return 1f;
        if (IsNaN(x) || IsNaN(y)) return CanonicalNaN;
        float ax = MathF.Abs(x);
        if (float.IsInfinity(y))
        {
            if (ax == 1f) return 1f;
            return (ax < 1f) == (y > 0f) ? 0f : float.PositiveInfinity;
        }
        bool yIsInt = y == MathF.Floor(y);
        bool yIsOddInt = yIsInt && MathF.Abs(y) < 16777216f && (((long)y) & 1) != 0;
        if (ax == 0f || ax == float.PositiveInfinity)
        {
            // 0 and inf: the magnitude is 0 or inf, the sign is x's sign iff y is an odd integer.
            bool big = (ax == 0f) == (y < 0f);
            float mag = big ? float.PositiveInfinity : 0f;
            return yIsOddInt ? CopySignBit(mag, x) : mag;
        }
        if (x < 0f && !yIsInt) return CanonicalNaN;
        float result = (float)ExpCoreSmall(ClampSmall(y * LogCore(ax)));
        return x < 0f && yIsOddInt ? -result : result;
    }

    // ---------------------------------------------------------------- sin / cos

    /// <summary>
    /// sine. Cody–Waite reduction for |x| &lt;= <see cref="CodyWaiteLimit"/>, exact Payne–Hanek above, so the
    /// ~0.5 ulp bound holds over the whole float range. Sin(±inf) = NaN.
    /// </summary>
    // Non-finite inputs never reach a double->float NaN conversion (whose NaN bits are not portable, e.g. on wasm).
    public static float Sin(float x) => float.IsFinite(x) ? (float)SinD(x) : CanonicalNaN;

    /// <summary>cosine; same reduction and accuracy as <see cref="Sin(float)"/>.</summary>
    public static float Cos(float x) => float.IsFinite(x) ? (float)CosD(x) : CanonicalNaN;

    /// <summary>sine in double (≈1–2 ulp for |x| &lt;= 1.6e6; ~2 ulp beyond, Payne–Hanek).</summary>
    public static double SinD(double x)
    {
        if (x == 0.0) return x; // keeps the sign of zero
        if (!double.IsFinite(x)) return CanonicalNaND;
        double r = ReducePio2(x, out int q);
        return q switch
        {
            0 => SinPoly(r),
            1 => CosPoly(r),
            2 => -SinPoly(r),
            _ => -CosPoly(r),
        };
    }

    /// <summary>cosine in double; see <see cref="SinD"/>.</summary>
    public static double CosD(double x)
    {
        if (!double.IsFinite(x)) return CanonicalNaND;
        double r = ReducePio2(x, out int q);
        return q switch
        {
            0 => CosPoly(r),
            1 => -SinPoly(r),
            2 => -CosPoly(r),
            _ => SinPoly(r),
        };
    }

    // ---------------------------------------------------------------- activations

    /// <summary>Hyperbolic tangent: t = expm1(2|x|), tanh = t/(t+2), sign restored.</summary>
    public static float Tanh(float x)
    {
        if (IsNaN(x)) return CanonicalNaN;
        double a = System.Math.Abs((double)x);
        double t;
        if (a >= 20.0)
        {
            t = 1.0;
        }
        else
        {
            double u = a + a;
            double em1 = u < HalfLn2 ? u * ExpM1OverR(u) : ExpCoreSmall(u) - 1.0;
            t = em1 / (em1 + 2.0);
        }
        return CopySignBit((float)t, x);
    }

    /// <summary>Logistic sigmoid 1/(1+e^-x).</summary>
    public static float Sigmoid(float x)
    {
        if (IsNaN(x)) return CanonicalNaN;
        return (float)(1.0 / (1.0 + ExpCoreSmall(ClampSmall(-(double)x))));
    }

    /// <summary>SiLU / swish: x * sigmoid(x) = x/(1+e^-x). Silu(-inf) = -0.</summary>
    public static float Silu(float x)
    {
        if (IsNaN(x)) return CanonicalNaN;
        if (x == float.NegativeInfinity) return -0f;
        double xd = x;
        return (float)(xd / (1.0 + ExpCoreSmall(ClampSmall(-xd))));
    }

    internal const double GeluCubic = 0.044715;
    internal const double GeluTwoC = 1.5957691216057308; // 2*sqrt(2/pi)

    /// <summary>
    /// GELU, tanh form ("gelu_new", GPT-2/NeoX/llama.cpp): 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3))),
    /// evaluated as the identical x/(1+exp(-2u)), u = sqrt(2/pi)(x+0.044715x^3), which has no cancellation.
    /// GeluTanh(-inf) = -0.
    /// </summary>
    public static float GeluTanh(float x)
    {
        if (IsNaN(x)) return CanonicalNaN;
        if (x == float.NegativeInfinity) return -0f;
        double xd = x;
        double inner = xd + GeluCubic * ((xd * xd) * xd);
        double e = ExpCoreSmall(ClampSmall(inner * -GeluTwoC));
        return (float)(xd / (1.0 + e));
    }

    /// <summary>
    /// Error function: |x| &lt; 2 positive series (2a/sqrt(pi)) e^{-a^2} sum (2a^2)^n/(2n+1)!!;
    /// 2 &lt;= |x| &lt; 6: 1 - erfc by continued fraction; beyond: ±1.
    /// </summary>
    public static float Erf(float x)
    {
        if (IsNaN(x)) return CanonicalNaN;
        double a = System.Math.Abs((double)x);
        double a2 = a * a; // exact: 24-bit float squared
        double r;
        if (a2 < 4.0) r = ErfSmallCore(TwoOverSqrtPi * a, a2);
        else if (a2 < 36.0) r = 1.0 - ErfcLargeCore(TwoOverSqrtPi * a, a2);
        else r = 1.0;
        return CopySignBit((float)r, x);
    }

    /// <summary>
    /// GELU, exact form: 0.5x(1+erf(x/sqrt2)). For x &lt; 0 it is evaluated as 0.5x*erfc(|x|/sqrt2)
    /// so the left tail keeps full relative accuracy. GeluErf(-inf) = -0.
    /// </summary>
    public static float GeluErf(float x)
    {
        if (IsNaN(x)) return CanonicalNaN;
        if (x == float.NegativeInfinity) return -0f;
        double xd = x;
        double a = System.Math.Abs(xd);
        double a2 = (a * a) * 0.5; // (|x|/sqrt2)^2, exact
        double pref = SqrtTwoOverPi * a; // 2(|x|/sqrt2)/sqrt(pi)
        double factor; // 1 + erf(x/sqrt2)
        if (x >= 0f)
        {
            double erf = a2 < 4.0 ? ErfSmallCore(pref, a2) : a2 < 36.0 ? 1.0 - ErfcLargeCore(pref, a2) : 1.0;
            factor = 1.0 + erf;
        }
        else
        {
            factor = a2 < 4.0 ? 1.0 - ErfSmallCore(pref, a2) : a2 <= SmallExpLimit ? ErfcLargeCore(pref, a2) : 0.0;
        }
        return (float)((0.5 * xd) * factor);
    }
}
