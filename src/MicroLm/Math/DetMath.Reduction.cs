using System.Numerics;

namespace MicroLm.Math;

// Argument reduction for sin/cos: x = q*(pi/2) + r, |r| <= ~pi/4, q mod 4 selects the quadrant.
internal static partial class DetMath
{
    internal const double TwoOverPi = 0.6366197723675814;
    // Three-part Cody–Waite split of pi/2: Pio2_1 and Pio2_2 have 33 significant bits, so k*Pio2_1
    // and k*Pio2_2 are exact for |k| < 2^20; Pio2_3 is the nearest double to the rest (residual 2^-123).
    internal const double Pio2_1 = 1.5707963267341256;
    internal const double Pio2_2 = 6.077100506303966e-11;
    internal const double Pio2_3 = 2.0222662487959506e-21;
    // pi/2 as a double-double (Pio2Hi = nearest double).
    internal const double Pio2Hi = 1.5707963267948966;
    internal const double Pio2Lo = 6.123233995736766e-17;

    /// <summary>Largest |x| reduced with Cody–Waite (|k| &lt;= 1.02e6 &lt; 2^20); above it Payne–Hanek is used.</summary>
    public const double CodyWaiteLimit = 1.6e6;

    /// <summary>Reduces finite x: returns r with x = q*pi/2 + r (mod 2*pi), |r| &lt;= ~pi/4.</summary>
    internal static double ReducePio2(double x, out int q)
    {
        if (System.Math.Abs(x) <= CodyWaiteLimit)
        {
            double kd = x * TwoOverPi + Shifter;
            long kbits = BitConverter.DoubleToInt64Bits(kd);
            kd -= Shifter;
            q = (int)((kbits - ShifterBits) & 3);
            return ((x - kd * Pio2_1) - kd * Pio2_2) - kd * Pio2_3;
        }
        if (x < 0)
        {
            double r = ReduceLarge(-x, out int qn);
            q = (-qn) & 3;
            return -r;
        }
        return ReduceLarge(x, out q);
    }

    /// <summary>
    /// Payne–Hanek reduction for finite x &gt; <see cref="CodyWaiteLimit"/>, in exact integer arithmetic:
    /// x = M*2^E (M a 53-bit integer), x*2/pi = M*T*2^(E-P) with T = floor(2^P * 2/pi), P = 1216 bits.
    /// The integer part gives q, the fraction f in [-1/2, 1/2) gives r = f*pi/2 (relative error ~2^-52).
    /// </summary>
    internal static double ReduceLarge(double x, out int q)
    {
        long bits = BitConverter.DoubleToInt64Bits(x);
        int be = (int)(bits >> 52);
        BigInteger m = new((bits & 0x000FFFFFFFFFFFFFL) | 0x0010000000000000L);
        int e = be - 1075;
        int shift = TwoOverPiBits.P - e; // > 0 since e <= 971
        BigInteger prod = m * TwoOverPiBits.Value;
        BigInteger intPart = prod >> shift;
        BigInteger frac = prod - (intPart << shift);
        if (!frac.IsZero && frac.GetBitLength() == shift) // frac >= 2^(shift-1): round up
        {
            frac -= BigInteger.One << shift;
            intPart += 1;
        }
        q = (int)(intPart & 3);
        bool negative = frac.Sign < 0;
        BigInteger mag = BigInteger.Abs(frac);
        long bl = mag.GetBitLength();
        int exp2 = -shift;
        if (bl > 62)
        {
            // Keep the top 62 bits; the (signed, hardware-exact) long->double conversion rounds to 53.
            mag >>= (int)(bl - 62);
            exp2 += (int)(bl - 62);
        }
        double f = (double)(long)mag;
        // f * 2^exp2, exp2 >= -1300: scale in steps that stay exact (f*2^exp2 is far above the subnormal range).
        while (exp2 < -1000)
        {
            f *= Pow2(-1000);
            exp2 += 1000;
        }
        f *= Pow2(exp2);
        if (negative) f = -f;
        return f * Pio2Hi + f * Pio2Lo;
    }

    /// <summary>floor(2^P * 2/pi), computed once from Machin's formula in exact integer arithmetic.</summary>
    private static class TwoOverPiBits
    {
        internal const int P = 1216;
        internal static readonly BigInteger Value = Compute();

        private static BigInteger Compute()
        {
            const int guard = 64;
            int s = P + guard;
            // pi * 2^s = 16 atan(1/5) - 4 atan(1/239), each series term truncated (error < #terms units).
            BigInteger pi = 16 * AtanInverse(5, s) - 4 * AtanInverse(239, s);
            return (BigInteger.One << (s + 1 + P)) / pi;
        }

        private static BigInteger AtanInverse(int n, int s)
        {
            BigInteger power = (BigInteger.One << s) / n; // 2^s / n^(2k+1)
            BigInteger n2 = (BigInteger)n * n;
            BigInteger sum = BigInteger.Zero;
            for (int k = 0; !power.IsZero; k++)
            {
                BigInteger term = power / (2 * k + 1);
                sum = (k & 1) == 0 ? sum + term : sum - term;
                power /= n2;
            }
            return sum;
        }
    }
}
