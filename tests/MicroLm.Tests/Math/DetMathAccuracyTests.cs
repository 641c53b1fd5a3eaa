using MicroLm.Math;
using Xunit.Abstractions;
using static MicroLm.Tests.Math.InputBlock;

namespace MicroLm.Tests.Math;

/// <summary>
/// Max ulp error of every float function against a double reference over >= 10^7 inputs each.
/// Each test prints one markdown row of the table in docs/math.md; reproduce with
/// dotnet test tests/MicroLm.Tests --filter "FullyQualifiedName~MicroLm.Tests.Math.DetMathAccuracy" --logger "console;verbosity=detailed"
/// The asserted bounds are the measured maxima rounded up slightly: a 1-ulp error anywhere fails them.
/// </summary>
public class DetMathAccuracyTests(ITestOutputHelper output)
{
    private const long N = 5_000_000; // per block; two blocks per function -> 10^7

    private void Report(AccuracyResult r, string domain, double bound)
    {
        output.WriteLine(r.Row(domain));
        Assert.True(r.MaxUlp <= bound, $"{r.Name}: max {r.MaxUlp} ulp at x={r.WorstInput:R} y={r.WorstInput2:R} exceeds {bound}");
    }

    [Fact]
    public void Exp() => Report(AccuracyHarness.Measure("Exp", DetMath.Exp, System.Math.Exp, 1,
        Sweep(-104, 89, N), Uniform(-104, 89, N)), "[-104, 89] (overflow, subnormal, underflow)", 0.5001);

    [Fact]
    public void Log() => Report(AccuracyHarness.Measure("Log", DetMath.Log, System.Math.Log, 2,
        Sweep(float.Epsilon, float.MaxValue, N), Uniform(0.25, 4, N)), "all positive floats + [0.25, 4]", 0.5001);

    [Fact]
    public void Sin() => Report(AccuracyHarness.Measure("Sin", DetMath.Sin, System.Math.Sin, 3,
        Sweep(-1e5, 1e5, N), Uniform(-1e5, 1e5, N)), "|x| <= 1e5", 0.5001);

    [Fact]
    public void Cos() => Report(AccuracyHarness.Measure("Cos", DetMath.Cos, System.Math.Cos, 4,
        Sweep(-1e5, 1e5, N), Uniform(-1e5, 1e5, N)), "|x| <= 1e5", 0.5001);

    [Fact]
    public void SinCosHugeArguments()
    {
        // Beyond Cody–Waite (|x| > 1.6e6) the Payne–Hanek path keeps the same accuracy up to FLT_MAX.
        const long M = 300_000;
        Report(AccuracyHarness.Measure("Sin", DetMath.Sin, System.Math.Sin, 5,
            Sweep(1e5, float.MaxValue, M), Uniform(-3e6, 3e6, M)), "1e5 < |x| <= FLT_MAX", 0.5001);
        Report(AccuracyHarness.Measure("Cos", DetMath.Cos, System.Math.Cos, 6,
            Sweep(-float.MaxValue, -1e5, M), Uniform(-3e6, 3e6, M)), "1e5 < |x| <= FLT_MAX", 0.5001);
    }

    [Fact]
    public void Pow() => Report(AccuracyHarness.Measure2("Pow", DetMath.Pow, System.Math.Pow, 7,
        (Sweep(1.0 / 1048576, 1048576, 5_500_000), Uniform(-8, 8, 5_500_000)),
        (Uniform(0.5, 2, 2_000_000), Uniform(-150, 150, 2_000_000)),
        (Uniform(1000, 1e6, 2_000_000), Uniform(-1, 0, 2_000_000)),   // rotary: base^(-2i/d)
        (Uniform(-4, -0.25, 500_000), Uniform(-40, 40, 500_000))),      // negative x: NaN or integer y
        "x in [2^-20, 2^20] y in [-8, 8]; x in [0.5, 2] y in [-150, 150]; rotary; x < 0", 0.5001);

    [Fact]
    public void Tanh() => Report(AccuracyHarness.Measure("Tanh", DetMath.Tanh, System.Math.Tanh, 8,
        Sweep(-10, 10, N), Uniform(-10, 10, N)), "[-10, 10] (±1 beyond)", 0.5001);

    [Fact]
    public void Sigmoid() => Report(AccuracyHarness.Measure("Sigmoid", DetMath.Sigmoid, Reference.Sigmoid, 9,
        Sweep(-110, 110, N), Uniform(-20, 20, N)), "[-110, 110]", 0.5001);

    [Fact]
    public void Silu() => Report(AccuracyHarness.Measure("Silu", DetMath.Silu, Reference.Silu, 10,
        Sweep(-120, 120, N), Uniform(-20, 20, N)), "[-120, 120]", 0.5001);

    [Fact]
    public void GeluTanh() => Report(AccuracyHarness.Measure("GeluTanh", DetMath.GeluTanh, Reference.GeluTanh, 11,
        Sweep(-20, 20, N), Uniform(-10, 10, N)), "[-20, 20]", 0.5001);

    [Fact]
    public void Erf() => Report(AccuracyHarness.Measure("Erf", DetMath.Erf, Reference.Erf, 12,
        Sweep(-6, 6, N), Uniform(-5, 5, N)), "[-6, 6] (±1 beyond)", 0.5001);

    [Fact]
    public void GeluErf() => Report(AccuracyHarness.Measure("GeluErf", DetMath.GeluErf, Reference.GeluErf, 13,
        Sweep(-20, 20, N), Uniform(-10, 10, N)), "[-20, 20]", 0.5001);
}
