using MicroLm.Math;
using Xunit.Abstractions;

namespace MicroLm.Tests.Math;

/// <summary>The double-precision functions, in double ulps against System.Math (itself ≤ ~0.5–1 ulp, so these bounds include the reference's error).</summary>
public class DetMathDoubleAccuracyTests(ITestOutputHelper output)
{
    private const long N = 2_000_000;

    private void Report(AccuracyResult r, string domain, double bound)
    {
        output.WriteLine(r.Row(domain));
        Assert.True(r.MaxUlp <= bound, $"{r.Name}: max {r.MaxUlp} ulp at x={r.WorstInput:R} exceeds {bound}");
    }

    private static Func<long, double> Uniform(double lo, double hi, ulong seed) => i => lo + (hi - lo) * AccuracyHarness.Unit(seed, i);

    [Fact]
    public void ExpD() => Report(AccuracyHarness.MeasureD("ExpD", DetMath.ExpD, System.Math.Exp, Uniform(-745.2, 709.8, 21), N), "[-745.2, 709.8]", 1.0);

    [Fact]
    public void LogD() => Report(AccuracyHarness.MeasureD("LogD", DetMath.LogD, System.Math.Log,
        i => i % 2 == 0 ? BitConverter.Int64BitsToDouble((long)(AccuracyHarness.Unit(22, i) * 0x7FEFFFFFFFFFFFFF)) : 0.5 + 1.5 * AccuracyHarness.Unit(23, i), N),
        "all positive doubles + [0.5, 2]", 2.0);

    [Fact]
    public void SinD() => Report(AccuracyHarness.MeasureD("SinD", DetMath.SinD, System.Math.Sin, Uniform(-1e5, 1e5, 24), N), "|x| <= 1e5", 2.0);

    [Fact]
    public void CosD() => Report(AccuracyHarness.MeasureD("CosD", DetMath.CosD, System.Math.Cos, Uniform(-1e5, 1e5, 25), N), "|x| <= 1e5", 2.0);

    [Fact]
    public void SinCosDHuge()
    {
        Func<long, double> huge = i => BitConverter.Int64BitsToDouble(0x4140000000000000L + (long)(AccuracyHarness.Unit(26, i) * (0x7FEFFFFFFFFFFFFF - 0x4140000000000000L)));
        Report(AccuracyHarness.MeasureD("SinD", DetMath.SinD, System.Math.Sin, huge, 100_000), "2^21 <= |x| <= DBL_MAX", 2.0);
        Report(AccuracyHarness.MeasureD("CosD", DetMath.CosD, System.Math.Cos, huge, 100_000), "2^21 <= |x| <= DBL_MAX", 2.0);
    }
}
