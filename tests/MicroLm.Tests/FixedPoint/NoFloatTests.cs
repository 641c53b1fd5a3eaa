using MicroLm.FixedPoint;

namespace MicroLm.Tests.FixedPoint;

/// <summary>The fixed-point backend's promise, checked on its compiled IL: no floating-point value
/// anywhere in src/MicroLm/FixedPoint between the weights and the logits. The one exception is
/// FixedLogits.ToFloat32, which writes the finished logits' bits into the session's float array (and
/// even there no float opcode may appear: the floats are built from integers).</summary>
public class NoFloatTests
{
    private static readonly HashSet<string> Allowed = ["MicroLm.FixedPoint.FixedLogits.ToFloat32"];

    [Fact]
    public void The_fixed_point_code_has_no_floating_point_operation()
    {
        var report = FloatScanner.Scan(typeof(FixedMatrix).Assembly.Location, "MicroLm.FixedPoint", Allowed);
        Assert.True(report.Findings.Count == 0, "floating point in the fixed backend:\n" + string.Join("\n", report.Findings));
        // Not vacuous: the scan saw the forward passes, their per-token steps (lambdas) and the kernels.
        Assert.Contains("MicroLm.FixedPoint.FixedMatrix.Dot", report.MethodsScanned);
        Assert.Contains("MicroLm.FixedPoint.FixedLlama.Pass.Forward", report.MethodsScanned);
        Assert.Contains("MicroLm.FixedPoint.FixedGptNeoX.Pass.Forward", report.MethodsScanned);
        Assert.Contains("MicroLm.FixedPoint.FixedAttentionBatch.Head", report.MethodsScanned);
        Assert.Contains(report.MethodsScanned, m => m.StartsWith("MicroLm.FixedPoint.FixedBatch.", StringComparison.Ordinal) && m.Contains("<.ctor>", StringComparison.Ordinal));
        Assert.Contains("MicroLm.FixedPoint.FixedLogits.ToFloat32", report.MethodsScanned);
    }

    [Fact]
    public void The_only_exception_really_references_float_so_the_allowance_is_needed()
    {
        var report = FloatScanner.Scan(typeof(FixedMatrix).Assembly.Location, "MicroLm.FixedPoint", new HashSet<string>());
        Assert.NotEmpty(report.Findings);
        Assert.All(report.Findings, f => Assert.StartsWith("MicroLm.FixedPoint.FixedLogits.ToFloat32:", f));
    }

    [Theory]
    [InlineData("ScaledByConstant", "ldc.r8")]
    [InlineData("ScaledByConstant", "conv.r8")]
    [InlineData("SquareRoot", "System.Math.Sqrt")]
    [InlineData("FromBits", "System.BitConverter.Int32BitsToSingle")]
    [InlineData("FromBits", "local of type float32")]
    [InlineData("Rounded", "System.Math.Round")]
    [InlineData("Generic", "float32")]
    [InlineData("Field", "field of type float32")]
    public void An_injected_float_is_caught(string type, string expected)
    {
        var report = FloatScanner.Scan(typeof(NoFloatTests).Assembly.Location, "MicroLm.Tests.FixedPoint.Injected", new HashSet<string>());
        var mine = report.Findings.Where(f => f.StartsWith($"MicroLm.Tests.FixedPoint.Injected.{type}.", StringComparison.Ordinal)).ToList();
        Assert.True(mine.Any(f => f.Contains(expected, StringComparison.Ordinal)), $"no finding with '{expected}' in:\n" + string.Join("\n", report.Findings));
        Assert.DoesNotContain(report.Findings, f => f.StartsWith("MicroLm.Tests.FixedPoint.Injected.IntegerOnly.", StringComparison.Ordinal));
    }
}
