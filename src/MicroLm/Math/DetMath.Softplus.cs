namespace MicroLm.Math;

internal static partial class DetMath
{
    /// <summary>
    /// softplus(x) = log(1 + e^x), with Mamba's cut-off: x itself above 20 (where the two differ by
    /// less than e^-20, below half an ulp of x). Computed in double and rounded once: below −20 the
    /// result is e^x (log1p(e) = e − e²/2 …, the correction is under 2^-29 relative); otherwise
    /// log1p(e^x) by the exact-compensation form log(u)·e/(u − 1), u = 1 + e, which keeps the relative
    /// error of e where u − 1 rounds. Softplus(NaN) = NaN, Softplus(−inf) = +0.
    /// </summary>
    public static float Softplus(float x)
    {
        if (IsNaN(x)) return CanonicalNaN;
        if (x > 20f) return x;
        double e = ExpCoreSmall(ClampSmall(x));
        if (x < -20f) return (float)e;
        double u = 1.0 + e;
        return (float)(LogCore(u) * (e / (u - 1.0)));
    }
}
