namespace MicroLm.FixedPoint;

/// <summary>Integer-only elementary functions: square root, exp, sigmoid, SiLU, GELU, sine and cosine,
/// log2 and exp2 (docs/fixed-point.md gives each one's format, range and accuracy). Constants are exact
/// integers derived offline to 80 digits (π/2, ln 2, log2 e, 1/2π, √(2/π), 0.044715).</summary>
internal static class FixedMath
{
    private const long Ln2Q62 = 3196577161300663915;       // ln 2 · 2⁶²
    private const long Ln2Q32 = 2977044472;                // ln 2 · 2³²
    private const long Log2EQ32 = 6196328019;              // log2 e · 2³²
    private const long HalfPiQ62 = 7244019458077122842;    // π/2 · 2⁶²
    private const ulong InvTwoPiQ64 = 2935890503282001226; // 1/(2π) · 2⁶⁴
    private const long SqrtTwoOverPiQ32 = 3426888095;      // √(2/π) · 2³²
    private const long GeluCubicQ32 = 192049463;           // 0.044715 · 2³²

    /// <summary>⌊√n⌋, bit by bit (exact).</summary>
    public static ulong Sqrt(UInt128 n)
    {
        UInt128 result = 0, bit = UInt128.One << 126;
        while (bit > n) bit >>= 2;
        while (bit != 0)
        {
            if (n >= result + bit) { n -= result + bit; result = (result >> 1) + bit; }
            else result >>= 1;
            bit >>= 2;
        }
        return (ulong)result;
    }

    /// <summary>2^(−i/256) in Q2.30 for i = 0..255, from a Taylor series of e^(−i·ln2/256) in Q.62.</summary>
    private static readonly int[] ExpTable = BuildExpTable();

    private static int[] BuildExpTable()
    {
        var t = new int[256];
        for (int i = 0; i < 256; i++) t[i] = (int)Fixed.RoundShift(ExpMinusQ62((Ln2Q62 >> 8) * i), 32);
        return t;
    }

    /// <summary>e^(−a) in Q.62 for 0 ≤ a &lt; 1 (a in Q.62): Σ (−a)^k/k!, 28 terms (error below 2⁻⁶⁰).</summary>
    private static long ExpMinusQ62(long a)
    {
        long sum = 1L << 62, term = 1L << 62;
        for (int k = 1; k < 28; k++)
        {
            term = (long)(((Int128)term * -a) >> 62) / k;
            sum += term;
        }
        return sum;
    }

    /// <summary>exp(x) in Q2.30 for x ≤ 0 in Q16.16: 2^−(n+f) = table[f's top 8 bits] · 2^−r (a cubic,
    /// r &lt; 1/256) shifted right by n. Below −24, exp(x) &lt; 2⁻³⁴ rounds to 0. Relative error ≤ 2⁻²⁸.</summary>
    public static int ExpNegative(int x)
    {
        if (x >= 0) return Fixed.OneQ30;
        if (x <= -(24 << 16)) return 0;
        long y = -(long)x * Log2EQ32;            // −x · log2 e in Q.48 (≤ 2^53)
        int n = (int)(y >> 48);
        long f = y & ((1L << 48) - 1);
        int i = (int)(f >> 40);
        long t = ((f & ((1L << 40) - 1)) >> 16) * Ln2Q32 >> 32; // r · ln 2 in Q.32 (< 2^24)
        long t2 = t * t >> 32, t3 = t2 * t >> 32;
        long poly = (1L << 32) - t + (t2 >> 1) - t3 / 6;        // e^−t in Q.32
        long v = ExpTable[i] * poly;                             // Q.62
        return 32 + n > 62 ? 0 : (int)Fixed.RoundShift(v, 32 + n);
    }

    /// <summary>sigmoid(x) = 1/(1+e^−x) in Q2.30 for x in Q16.16 (symmetric: σ(−x) = 1 − σ(x)).</summary>
    public static int Sigmoid(int x)
    {
        long e = ExpNegative(x >= 0 ? (x == int.MinValue ? int.MinValue : -x) : x);
        long positive = (1L << 60) / ((1L << 30) + e); // 1/(1+e^−|x|) in Q.30
        return (int)(x >= 0 ? positive : (1L << 30) - positive);
    }

    /// <summary>SiLU(x) = x·σ(x), Q16.16 in and out (|result| ≤ |x|, so it never overflows).</summary>
    public static int Silu(int x) => (int)Fixed.RoundShift((long)x * Sigmoid(x), 30);

    /// <summary>GELU, tanh form: x·σ(2u), u = √(2/π)(x + 0.044715x³), since ½(1+tanh u) = σ(2u). For
    /// |x| ≥ 16, σ(2u) is within 10⁻¹¹ of 1 (x &gt; 0) or 0 (x &lt; 0), below Q16.16's resolution: x or 0.</summary>
    public static int Gelu(int x)
    {
        if (x >= 16 << 16) return x;
        if (x <= -(16 << 16)) return 0;
        long x3 = (long)x * x * x >> 32;                      // x³ in Q16.16 (|x| < 2^20 raw: x³ < 2^60)
        long inner = x + (x3 * GeluCubicQ32 >> 32);
        long twoU = inner * SqrtTwoOverPiQ32 >> 31;           // 2u in Q16.16 (|2u| < 2^26)
        return (int)Fixed.RoundShift((long)x * Sigmoid((int)twoU), 30);
    }

    /// <summary>log2 of m·2^e (m &gt; 0) in Q.40, by the binary logarithm's repeated squaring in Q.62.</summary>
    public static long Log2Q40(long m, int e)
    {
        int top = Fixed.BitLength((ulong)m) - 1;
        UInt128 y = (UInt128)(ulong)m << (62 - top);          // m / 2^top in [1, 2), Q.62
        long fraction = 0;
        for (int bit = 39; bit >= 0; bit--)
        {
            y = y * y >> 62;
            if (y >= (UInt128)1 << 63) { y >>= 1; fraction |= 1L << bit; }
        }
        return ((long)(top + e) << 40) + fraction;
    }

    /// <summary>2^(−a) in Q.62 for a ≥ 0 in Q.40.</summary>
    public static long Exp2NegativeQ62(long a)
    {
        long n = a >> 40;
        if (n >= 62) return 0;
        long f = a & ((1L << 40) - 1);
        long r = (long)(((Int128)(f << 22) * Ln2Q62) >> 62);  // f · ln 2 in Q.62
        return ExpMinusQ62(r) >> (int)n;
    }

    /// <summary>A frequency in Q.62 (≤ 1) as turns per position in Q0.64 (divided by 2π).</summary>
    public static ulong TurnsQ64(long frequencyQ62) => (ulong)(((UInt128)(ulong)frequencyQ62 * InvTwoPiQ64) >> 62);

    /// <summary>cos and sin of an angle given in turns (Q0.64: the full ulong range is one turn, so
    /// position · frequency wraps exactly at whole turns), both in Q2.30. Taylor series on the quarter
    /// turn in Q.60 (error below 2⁻⁵⁰ before the final rounding).</summary>
    public static void CosSin(ulong turns, out int cos, out int sin)
    {
        int quadrant = (int)(turns >> 62);
        ulong r = turns & ((1UL << 62) - 1);                  // fraction of the quarter turn, Q.62
        long phi = (long)(((UInt128)r * (ulong)HalfPiQ62) >> 64); // angle in Q.60, [0, π/2)
        long phi2 = (long)(((Int128)phi * phi) >> 60);
        long s = phi, c = 1L << 60, ts = phi, tc = 1L << 60;
        for (int k = 1; k <= 14; k++)
        {
            ts = (long)(((Int128)ts * -phi2) >> 60) / ((2 * k) * (2 * k + 1));
            tc = (long)(((Int128)tc * -phi2) >> 60) / ((2 * k - 1) * (2 * k));
            s += ts; c += tc;
        }
        int cq = (int)Fixed.RoundShift(c, 30), sq = (int)Fixed.RoundShift(s, 30);
        (cos, sin) = quadrant switch
        {
            0 => (cq, sq),
            1 => (-sq, cq),
            2 => (-cq, -sq),
            _ => (sq, -cq),
        };
    }
}
