using System.Runtime.Intrinsics;
using MicroLm.Math;

namespace MicroLm.Tests.Math;

public delegate void SpanOp(ReadOnlySpan<float> x, Span<float> y);
public delegate float SoftmaxOp(Span<float> x);

/// <summary>One implementation width (scalar, 128, 256, 512 or the public dispatcher).</summary>
public sealed record SimdPath(string Name, bool Accelerated, SpanOp Exp, SpanOp Silu, SpanOp GeluTanh, SoftmaxOp Softmax)
{
    public override string ToString() => Name;
}

public static class SimdPaths
{
    public static readonly SimdPath Scalar = new("scalar", true, DetMath.ExpScalarPath, DetMath.SiluScalarPath, DetMath.GeluTanhScalarPath, DetMath.SoftmaxScalarPath);

    /// <summary>All vector widths, also the ones not accelerated here (they then run the BCL software fallback, which must match too).</summary>
    public static readonly SimdPath[] Vector =
    [
        new("Vector128", Vector128.IsHardwareAccelerated, DetMath.ExpV128Path, DetMath.SiluV128Path, DetMath.GeluTanhV128Path, DetMath.SoftmaxV128Path),
        new("Vector256", Vector256.IsHardwareAccelerated, DetMath.ExpV256Path, DetMath.SiluV256Path, DetMath.GeluTanhV256Path, DetMath.SoftmaxV256Path),
        new("Vector512", Vector512.IsHardwareAccelerated, DetMath.ExpV512Path, DetMath.SiluV512Path, DetMath.GeluTanhV512Path, DetMath.SoftmaxV512Path),
        new("dispatch", true, DetMath.Exp, DetMath.Silu, DetMath.GeluTanh, DetMath.SoftmaxInPlace),
    ];

    public static IEnumerable<SimdPath> All => Vector.Prepend(Scalar);
}
