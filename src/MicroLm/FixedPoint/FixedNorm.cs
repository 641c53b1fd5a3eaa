namespace MicroLm.FixedPoint;

/// <summary>RMSNorm and LayerNorm in integers. Both centre the row in 2⁻³² units (c = x·2¹⁶ for
/// RMSNorm, x·2¹⁶ − mean for LayerNorm; |c| &lt; 2⁴⁸), sum c² exactly in 128 bits (≤ dim·2⁹⁶), take
/// rms = ⌊√(Σc²/dim + ε·2⁶⁴)⌋ in 2⁻³² units by the exact integer square root, and its reciprocal
/// 2⁹⁶/rms once per row; each output is c·(2⁹⁶/rms) (|c/rms| ≤ √dim, so the 128-bit product is below
/// 2¹⁰⁴) rounded to Q16.16, times the weight (64 bits, ≤ 2⁵⁴), plus the bias, saturating into Q16.16.</summary>
internal static class FixedNorm
{
    /// <summary>ε (from its binary32 bits) in 2⁻⁶⁴ units, as the norms add it to the mean square.</summary>
    public static UInt128 Epsilon(uint bits)
    {
        if (!Fixed.DecodeFloat32(bits, out long m, out int e) || m < 0)
            throw new MicroLmException("the norm epsilon is negative or not finite");
        var guard = new RangeGuard();
        long eps = Fixed.Scale(m, e + 64, guard);
        if (guard.Count != 0) throw new MicroLmException("the norm epsilon is too large for the fixed-point backend");
        return (UInt128)(ulong)eps;
    }

    public static void Rms(ReadOnlySpan<int> x, ReadOnlySpan<int> weight, UInt128 eps, Span<int> output, RangeGuard guard) =>
        Normalize(x, 0, weight, default, eps, output, guard);

    public static void Layer(ReadOnlySpan<int> x, ReadOnlySpan<int> weight, ReadOnlySpan<int> bias, UInt128 eps, Span<int> output, RangeGuard guard)
    {
        long sum = 0;
        foreach (int v in x) sum += v;                       // ≤ dim·2³¹
        long mean = (long)(((Int128)sum << 16) / x.Length); // mean in 2⁻³² units, truncated toward zero
        Normalize(x, mean, weight, bias, eps, output, guard);
    }

    private static void Normalize(ReadOnlySpan<int> x, long mean, ReadOnlySpan<int> weight, ReadOnlySpan<int> bias, UInt128 eps, Span<int> output, RangeGuard guard)
    {
        int n = x.Length;
        UInt128 squares = 0;
        foreach (int v in x)
        {
            long c = ((long)v << 16) - mean;
            squares += (UInt128)((Int128)c * c);
        }
        ulong rms = FixedMath.Sqrt(squares / (uint)n + eps);
        if (rms == 0) // only with ε = 0 and an all-zero row
        {
            output[..n].Clear();
            if (!bias.IsEmpty) bias.CopyTo(output);
            return;
        }
        Int128 inverse = (Int128)((UInt128.One << 96) / rms);
        for (int i = 0; i < n; i++)
        {
            long c = ((long)x[i] << 16) - mean;
            long normed = (long)Fixed.RoundShift((Int128)c * inverse, 80); // c/rms in Q16.16
            long v = Fixed.RoundShift(normed * weight[i], 16);
            if (!bias.IsEmpty) v += bias[i];
            output[i] = Fixed.Saturate(v, guard);
        }
    }
}
