using System.Globalization;

namespace MicroLm.Tests.Math;

/// <summary>How one block of test inputs is generated (deterministically from the element index).</summary>
public readonly record struct InputBlock(bool BitSweep, double Lo, double Hi, long Count)
{
    /// <summary>Every float bit pattern between lo and hi (ordered), stepped evenly to reach `count` samples.</summary>
    public static InputBlock Sweep(double lo, double hi, long count) => new(true, lo, hi, count);

    /// <summary>Seeded uniform values in [lo, hi], rounded to float.</summary>
    public static InputBlock Uniform(double lo, double hi, long count) => new(false, lo, hi, count);
}

public readonly record struct AccuracyResult(string Name, long Inputs, double MaxUlp, double WorstInput, double WorstInput2)
{
    public string Row(string domain) => string.Create(CultureInfo.InvariantCulture,
        $"| {Name} | {domain} | {Inputs:N0} | {MaxUlp:0.000000} | x={WorstInput:R}{(double.IsNaN(WorstInput2) ? "" : $", y={WorstInput2:R}")} |");
}

public static class AccuracyHarness
{
    // ---- deterministic input generation ----------------------------------------------------------

    internal static ulong SplitMix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform double in [0, 1) from (seed, index).</summary>
    internal static double Unit(ulong seed, long i) => (SplitMix(seed * 0x100000001B3UL + (ulong)i) >> 11) * (1.0 / 9007199254740992.0);

    /// <summary>Monotone map float -> integer key (so consecutive keys are consecutive floats).</summary>
    internal static long Key(float x)
    {
        int b = BitConverter.SingleToInt32Bits(x);
        return b >= 0 ? b : -(long)(b & 0x7FFFFFFF);
    }

    internal static float FromKey(long k) => k >= 0
        ? BitConverter.Int32BitsToSingle((int)k)
        : BitConverter.Int32BitsToSingle((int)(-k) | unchecked((int)0x80000000));

    internal static float Input(InputBlock b, long i, ulong seed)
    {
        if (b.BitSweep)
        {
            long k0 = Key((float)b.Lo), k1 = Key((float)b.Hi);
            double step = (double)(k1 - k0) / b.Count;
            // evenly spaced keys plus a seeded jitter inside each step, so every run covers the range uniformly
            long k = k0 + (long)((i + Unit(seed, i)) * step);
            return FromKey(System.Math.Min(k, k1));
        }
        return (float)(b.Lo + (b.Hi - b.Lo) * Unit(seed, i));
    }

    // ---- ulp measurement -----------------------------------------------------------------------------

    /// <summary>|result - reference| in units of the float ulp at the reference (subnormal ulp = 2^-149).</summary>
    public static double UlpErrorF(float result, double reference)
    {
        if (double.IsNaN(reference)) return float.IsNaN(result) ? 0 : double.PositiveInfinity;
        if (float.IsNaN(result)) return double.PositiveInfinity;
        if (float.IsInfinity(result) || double.IsInfinity(reference))
            return (float)reference == result ? 0 : double.PositiveInfinity;
        double a = System.Math.Abs(reference);
        int e = (int)((BitConverter.DoubleToInt64Bits(a) >> 52) & 0x7FF) - 1023;
        double ulp = e < -126 ? System.Math.Pow(2, -149) : System.Math.Pow(2, e - 23);
        return System.Math.Abs(result - reference) / ulp;
    }

    /// <summary>Same for double results: units of the double ulp at the reference.</summary>
    public static double UlpErrorD(double result, double reference)
    {
        if (double.IsNaN(reference)) return double.IsNaN(result) ? 0 : double.PositiveInfinity;
        if (double.IsNaN(result)) return double.PositiveInfinity;
        if (double.IsInfinity(result) || double.IsInfinity(reference))
            return reference == result ? 0 : double.PositiveInfinity;
        double a = System.Math.Abs(reference);
        int e = (int)((BitConverter.DoubleToInt64Bits(a) >> 52) & 0x7FF) - 1023;
        double ulp = System.Math.Pow(2, System.Math.Max(e, -1022) - 52);
        return System.Math.Abs(result - reference) / ulp;
    }

    private const int Chunks = 64;

    /// <summary>Max float-ulp error of f against reference over all blocks (parallel, deterministic result).</summary>
    public static AccuracyResult Measure(string name, Func<float, float> f, Func<double, double> reference, ulong seed, params InputBlock[] blocks)
    {
        double worst = -1, worstX = double.NaN;
        long total = 0;
        for (int bi = 0; bi < blocks.Length; bi++)
        {
            InputBlock b = blocks[bi];
            ulong bseed = seed + (ulong)bi * 7919;
            var maxes = new (double err, double x)[Chunks];
            Parallel.For(0, Chunks, c =>
            {
                long from = b.Count * c / Chunks, to = b.Count * (c + 1) / Chunks;
                double w = -1, wx = double.NaN;
                for (long i = from; i < to; i++)
                {
                    float x = Input(b, i, bseed);
                    double err = UlpErrorF(f(x), reference(x));
                    if (err > w) { w = err; wx = x; }
                }
                maxes[c] = (w, wx);
            });
            foreach (var (err, x) in maxes)
                if (err > worst) { worst = err; worstX = x; }
            total += b.Count;
        }
        return new AccuracyResult(name, total, worst, worstX, double.NaN);
    }

    /// <summary>Two-argument version: x and y drawn from paired blocks.</summary>
    public static AccuracyResult Measure2(string name, Func<float, float, float> f, Func<double, double, double> reference, ulong seed,
        params (InputBlock x, InputBlock y)[] blocks)
    {
        double worst = -1, worstX = double.NaN, worstY = double.NaN;
        long total = 0;
        for (int bi = 0; bi < blocks.Length; bi++)
        {
            var (bx, by) = blocks[bi];
            ulong sx = seed + (ulong)bi * 7919, sy = sx ^ 0xABCDEF;
            var maxes = new (double err, double x, double y)[Chunks];
            Parallel.For(0, Chunks, c =>
            {
                long from = bx.Count * c / Chunks, to = bx.Count * (c + 1) / Chunks;
                double w = -1, wx = double.NaN, wy = double.NaN;
                for (long i = from; i < to; i++)
                {
                    float x = Input(bx, i, sx);
                    float y = Input(by, (long)(Unit(sy, i) * by.Count), sy); // independent pairing
                    double err = UlpErrorF(f(x, y), reference(x, y));
                    if (err > w) { w = err; wx = x; wy = y; }
                }
                maxes[c] = (w, wx, wy);
            });
            foreach (var (err, x, y) in maxes)
                if (err > worst) { worst = err; worstX = x; worstY = y; }
            total += bx.Count;
        }
        return new AccuracyResult(name, total, worst, worstX, worstY);
    }

    /// <summary>Max double-ulp error of a double function over generated double inputs.</summary>
    public static AccuracyResult MeasureD(string name, Func<double, double> f, Func<double, double> reference, Func<long, double> input, long count)
    {
        var maxes = new (double err, double x)[Chunks];
        Parallel.For(0, Chunks, c =>
        {
            long from = count * c / Chunks, to = count * (c + 1) / Chunks;
            double w = -1, wx = double.NaN;
            for (long i = from; i < to; i++)
            {
                double x = input(i);
                double err = UlpErrorD(f(x), reference(x));
                if (err > w) { w = err; wx = x; }
            }
            maxes[c] = (w, wx);
        });
        double worst = -1, worstX = double.NaN;
        foreach (var (err, x) in maxes)
            if (err > worst) { worst = err; worstX = x; }
        return new AccuracyResult(name, count, worst, worstX, double.NaN);
    }
}

/// <summary>
/// Test-only double references for functions System.Math lacks. Deliberately different algorithms from the
/// library: alternating Maclaurin series for erf (library: positive series), Laplace's odd continued fraction
/// for erfc (library: the even/Jacobi fraction), both checked against mpmath in tools/derive_math_constants.py.
/// </summary>
public static class Reference
{
    public static double Erf(double x)
    {
        double a = System.Math.Abs(x);
        double r = a < 2.5 ? ErfSeries(a) : 1.0 - ErfcCf(a);
        return x < 0 ? -r : r;
    }

    /// <summary>erfc(a) for a &gt;= 0.</summary>
    public static double Erfc(double a) => a < 2.5 ? 1.0 - ErfSeries(a) : ErfcCf(a);

    // (-1)^n / (n! (2n+1)), built by recurrence in double (relative error ~n ulp each; the a < 2.5 series
    // loses <= 7 bits to cancellation, so the reference is good to ~2^-44, i.e. ~2^-20 float ulp).
    private static readonly double[] ErfTaylor = BuildErfTaylor(50);

    private static double[] BuildErfTaylor(int n)
    {
        var c = new double[n];
        double f = 1;
        for (int k = 0; k < n; k++)
        {
            if (k > 0) f *= -1.0 / k;
            c[k] = f / (2 * k + 1);
        }
        return c;
    }

    private static double ErfSeries(double a)
    {
        double z = a * a, s = 0;
        for (int k = ErfTaylor.Length - 1; k >= 0; k--)
            s = s * z + ErfTaylor[k];
        return s * a * (2.0 / System.Math.Sqrt(System.Math.PI));
    }

    private static double ErfcCf(double a)
    {
        if (a > 27) return 0;
        double f = a;
        for (int k = 100; k >= 1; k--)
            f = a + (k * 0.5) / f;
        return System.Math.Exp(-a * a) / (System.Math.Sqrt(System.Math.PI) * f);
    }

    public static double GeluErf(double x)
    {
        double z = System.Math.Abs(x) / System.Math.Sqrt(2.0);
        return x >= 0 ? 0.5 * x * (1.0 + Erf(z)) : 0.5 * x * Erfc(z);
    }

    /// <summary>0.5x(1+tanh(u)) written as x/(1+e^{-2u}) (identical; no cancellation for x &lt; 0).</summary>
    public static double GeluTanh(double x)
    {
        double u = System.Math.Sqrt(2.0 / System.Math.PI) * (x + 0.044715 * x * x * x);
        return x / (1.0 + System.Math.Exp(-2.0 * u));
    }

    public static double Sigmoid(double x) => 1.0 / (1.0 + System.Math.Exp(-x));

    public static double Silu(double x) => x / (1.0 + System.Math.Exp(-x));
}
