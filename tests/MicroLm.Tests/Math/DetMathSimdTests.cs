using MicroLm.Math;
using Xunit.Abstractions;

namespace MicroLm.Tests.Math;

/// <summary>Scalar function == every SIMD span path, bit for bit.</summary>
public class DetMathSimdTests(ITestOutputHelper output)
{
    public static IEnumerable<object[]> Widths() => SimdPaths.Vector.Select(p => new object[] { p.Name });

    private static SimdPath Path(string name) => SimdPaths.Vector.Single(p => p.Name == name);

    private static readonly float[] Specials =
    [
        0f, -0f, float.Epsilon, -float.Epsilon, BitConverter.Int32BitsToSingle(0x007FFFFF), float.MaxValue, -float.MaxValue,
        float.PositiveInfinity, float.NegativeInfinity, float.NaN, BitConverter.Int32BitsToSingle(0x7FC00001),
        88.72283f, 88.72284f, -103.97207f, -87.33655f, -120f, -20f, 1f, -1f, 1e-30f, -1e-30f, 9.1f, -9.1f,
    ];

    /// <summary>Seeded inputs: specials, then a mix of random bit patterns and values in activation range.</summary>
    private static float[] Inputs(int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            x[i] = (i % 7) switch
            {
                0 => Specials[rng.Next(Specials.Length)],
                1 => BitConverter.Int32BitsToSingle(rng.Next() ^ (rng.Next(2) << 31)),
                2 => (float)(rng.NextDouble() * 240 - 120),
                _ => (float)(rng.NextDouble() * 20 - 10),
            };
        }
        return x;
    }

    private static void AssertBits(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{what}: element {i} differs: {expected[i]:R} vs {actual[i]:R}");
    }

    [Theory]
    [MemberData(nameof(Widths))]
    public void ElementwiseMatchesScalarFunction(string width)
    {
        var p = Path(width);
        output.WriteLine($"{width}: hardware accelerated = {p.Accelerated}");
        var ops = new (string, SpanOp, Func<float, float>)[] { ("Exp", p.Exp, DetMath.Exp), ("Silu", p.Silu, DetMath.Silu), ("GeluTanh", p.GeluTanh, DetMath.GeluTanh) };
        foreach (int n in new[] { 0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 100, 1000, 100_003 })
        {
            float[] x = Inputs(n, n);
            foreach (var (name, op, f) in ops)
            {
                float[] expected = x.Select(f).ToArray();
                float[] y = new float[n];
                op(x, y);
                AssertBits(expected, y, $"{width} {name} n={n}");
                float[] inPlace = (float[])x.Clone();
                op(inPlace, inPlace);
                AssertBits(expected, inPlace, $"{width} {name} in place n={n}");
                // unaligned start
                if (n > 2)
                {
                    float[] y2 = new float[n - 1];
                    op(x.AsSpan(1), y2);
                    AssertBits(expected[1..], y2, $"{width} {name} offset n={n}");
                }
            }
        }
    }

    [Fact]
    public void ScalarPathsMatchScalarFunctions()
    {
        float[] x = Inputs(10_007, 42);
        var ops = new (SpanOp, Func<float, float>)[] { (DetMath.ExpScalarPath, DetMath.Exp), (DetMath.SiluScalarPath, DetMath.Silu), (DetMath.GeluTanhScalarPath, DetMath.GeluTanh) };
        foreach (var (op, f) in ops)
        {
            float[] y = new float[x.Length];
            op(x, y);
            AssertBits(x.Select(f).ToArray(), y, "scalar path");
        }
    }

    [Theory]
    [MemberData(nameof(Widths))]
    public void SoftmaxMatchesScalarPath(string width)
    {
        var p = Path(width);
        var rng = new Random(7);
        foreach (int n in new[] { 1, 2, 3, 15, 16, 17, 31, 32, 33, 47, 64, 100, 1000, 32_001, 151_936 })
        {
            float[] x = new float[n];
            for (int i = 0; i < n; i++)
                x[i] = rng.Next(10) == 0 ? float.NegativeInfinity : (float)(rng.NextDouble() * 60 - 30);
            x[rng.Next(n)] = 12.5f; // at least one finite value
            float[] a = (float[])x.Clone(), b = (float[])x.Clone();
            float sa = DetMath.SoftmaxScalarPath(a);
            float sb = p.Softmax(b);
            Assert.Equal(BitConverter.SingleToInt32Bits(sa), BitConverter.SingleToInt32Bits(sb));
            AssertBits(a, b, $"{width} softmax n={n}");
        }
    }

    [Fact]
    public void SoftmaxFollowsDocumentedOrder()
    {
        var rng = new Random(11);
        foreach (int n in new[] { 1, 5, 16, 17, 40, 1001 })
        {
            float[] x = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 40 - 20)).ToArray();
            // independent re-statement of the spec
            float m = x.Max();
            // cross-check with the double function: exp(x_i - m) rounded once
            float[] e = x.Select(v => (float)DetMath.ExpD((double)v - m)).ToArray();
            float[] lanes = new float[16];
            for (int i = 0; i < n; i++) lanes[i % 16] += DetMathExpShifted(x[i], m);
            for (int j = 0; j < 8; j++) lanes[j] += lanes[j + 8];
            for (int j = 0; j < 4; j++) lanes[j] += lanes[j + 4];
            for (int j = 0; j < 2; j++) lanes[j] += lanes[j + 2];
            lanes[0] += lanes[1];
            float sum = lanes[0];
            float[] y = (float[])x.Clone();
            float returned = DetMath.SoftmaxInPlace(y);
            Assert.Equal(BitConverter.SingleToInt32Bits(sum), BitConverter.SingleToInt32Bits(returned));
            for (int i = 0; i < n; i++)
            {
                Assert.Equal(BitConverter.SingleToInt32Bits(DetMathExpShifted(x[i], m) / sum), BitConverter.SingleToInt32Bits(y[i]));
                Assert.True(System.Math.Abs(e[i] / sum - y[i]) <= 2e-7f * System.Math.Max(y[i], 1e-30f) + 1e-38f);
            }
            Assert.InRange(y.Sum(), 0.9999f, 1.0001f);
        }
    }

    private static float DetMathExpShifted(float x, float m) => DetMath.ExpShiftedScalar(x, m);
}
