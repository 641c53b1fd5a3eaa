using MicroLm.Math;

namespace MicroLm.Tests.Math;

public class DetMathEdgeCaseTests
{
    private const float MinSub = float.Epsilon;                                   // 2^-149
    private static readonly float MaxSub = BitConverter.Int32BitsToSingle(0x007FFFFF); // largest subnormal
    private const float Inf = float.PositiveInfinity;

    private static void Same(float expected, float actual, string what) =>
        Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(actual),
            $"{what}: expected {expected:R} (0x{BitConverter.SingleToInt32Bits(expected):X8}) got {actual:R} (0x{BitConverter.SingleToInt32Bits(actual):X8})");

    private static readonly float[] NaNs =
    [
        float.NaN,
        BitConverter.Int32BitsToSingle(0x7FC00000),          // +qNaN (ARM default NaN)
        BitConverter.Int32BitsToSingle(0x7F800001),          // signalling NaN
        BitConverter.Int32BitsToSingle(unchecked((int)0xFFFFFFFF)),
        BitConverter.Int32BitsToSingle(0x7FC12345),          // payload
    ];

    public static IEnumerable<object[]> UnaryFunctions() =>
        new (string, Func<float, float>)[]
        {
            ("Exp", DetMath.Exp), ("Log", DetMath.Log), ("Sin", DetMath.Sin), ("Cos", DetMath.Cos), ("Tanh", DetMath.Tanh),
            ("Erf", DetMath.Erf), ("Sigmoid", DetMath.Sigmoid), ("Silu", DetMath.Silu), ("GeluTanh", DetMath.GeluTanh),
            ("GeluErf", DetMath.GeluErf), ("Pow(x,2.5)", x => DetMath.Pow(x, 2.5f)), ("Pow(2.5,x)", x => DetMath.Pow(2.5f, x)),
        }.Select(t => new object[] { t.Item1, t.Item2 });

    [Theory]
    [MemberData(nameof(UnaryFunctions))]
    public void NaNInputsGiveCanonicalNaN(string name, Func<float, float> f)
    {
        foreach (float nan in NaNs)
            Assert.Equal(unchecked((int)0xFFC00000), BitConverter.SingleToInt32Bits(f(nan)));
        _ = name;
    }

    [Fact]
    public void NaNResultsAreCanonical()
    {
        int canon = DetMath.CanonicalNaNBits;
        Assert.Equal(unchecked((int)0xFFC00000), canon);
        Assert.Equal(BitConverter.SingleToInt32Bits(float.NaN), canon);
        float[] produced =
        [
            DetMath.Log(-1f), DetMath.Log(-MinSub), DetMath.Log(float.NegativeInfinity),
            DetMath.Sin(Inf), DetMath.Sin(-Inf), DetMath.Cos(Inf), DetMath.Cos(-Inf),
            DetMath.Pow(-2f, 0.5f), DetMath.Pow(-Inf, float.NaN), DetMath.Pow(float.NaN, 1f), DetMath.Pow(2f, float.NaN),
        ];
        foreach (float v in produced)
            Assert.Equal(canon, BitConverter.SingleToInt32Bits(v));
        Assert.Equal(DetMath.CanonicalNaNBitsD, BitConverter.DoubleToInt64Bits(DetMath.LogD(-1)));
        Assert.Equal(DetMath.CanonicalNaNBitsD, BitConverter.DoubleToInt64Bits(DetMath.SinD(double.PositiveInfinity)));
        Assert.Equal(DetMath.CanonicalNaNBitsD, BitConverter.DoubleToInt64Bits(DetMath.CosD(double.NaN)));
        Assert.Equal(DetMath.CanonicalNaNBitsD, BitConverter.DoubleToInt64Bits(DetMath.ExpD(BitConverter.Int64BitsToDouble(0x7FF0000000000001))));

        // span paths, every width
        float[] x = [1f, NaNs[1], 2f, NaNs[2], -3f, NaNs[3], 0f, NaNs[4], 5f, 6f, 7f, 8f, 9f, 10f, 11f, 12f, 13f, NaNs[1]];
        foreach (var path in SimdPaths.All)
        {
            float[] y = new float[x.Length];
            foreach (var op in new[] { path.Exp, path.Silu, path.GeluTanh })
            {
                op(x, y);
                for (int i = 0; i < x.Length; i++)
                    if (float.IsNaN(x[i])) Assert.Equal(canon, BitConverter.SingleToInt32Bits(y[i]));
            }
            float[] s = (float[])x.Clone();
            Assert.Equal(canon, BitConverter.SingleToInt32Bits(path.Softmax(s)));
            Assert.All(s, v => Assert.Equal(canon, BitConverter.SingleToInt32Bits(v)));
            float[] allNegInf = Enumerable.Repeat(float.NegativeInfinity, 21).ToArray();
            Assert.Equal(canon, BitConverter.SingleToInt32Bits(path.Softmax(allNegInf)));
            Assert.All(allNegInf, v => Assert.Equal(canon, BitConverter.SingleToInt32Bits(v)));
        }
    }

    [Fact]
    public void Exp()
    {
        Same(1f, DetMath.Exp(0f), "exp(+0)");
        Same(1f, DetMath.Exp(-0f), "exp(-0)");
        Same(1f, DetMath.Exp(MinSub), "exp(min subnormal)");
        Same(1f, DetMath.Exp(-MaxSub), "exp(-max subnormal)");
        Same(Inf, DetMath.Exp(Inf), "exp(inf)");
        Same(0f, DetMath.Exp(-Inf), "exp(-inf)");
        // overflow threshold: largest float x with exp(x) finite is 88.72283 (0x42B17217)
        Same((float)System.Math.Exp(88.72283172607422), DetMath.Exp(88.72283172607422f), "exp(88.72283)");
        Assert.True(float.IsFinite(DetMath.Exp(BitConverter.Int32BitsToSingle(0x42B17217))));
        Same(Inf, DetMath.Exp(BitConverter.Int32BitsToSingle(0x42B17218)), "exp(88.72284)");
        // underflow: subnormal results, and the last x that still rounds up to 2^-149
        Same((float)System.Math.Exp(-100.0), DetMath.Exp(-100f), "exp(-100) subnormal");
        Same(MinSub, DetMath.Exp(-103.97207f), "exp(-103.97207)");
        Same(0f, DetMath.Exp(-103.98f), "exp(-103.98)");
        Same(0f, DetMath.Exp(-1000f), "exp(-1000)");
        Same(Inf, DetMath.Exp(float.MaxValue), "exp(FLT_MAX)");
        Same(0f, DetMath.Exp(-float.MaxValue), "exp(-FLT_MAX)");
        Same(2.7182817f, DetMath.Exp(1f), "exp(1)");
    }

    [Fact]
    public void ExpD()
    {
        Assert.Equal(1.0, DetMath.ExpD(0.0));
        Assert.Equal(double.PositiveInfinity, DetMath.ExpD(709.79));
        Assert.True(double.IsFinite(DetMath.ExpD(709.78)));
        Assert.Equal(double.Epsilon, DetMath.ExpD(-745.0));          // 4.94e-324 (rounded up from 4.94e-324*0.99)
        Assert.Equal(0.0, DetMath.ExpD(-745.2));
        Assert.Equal(0.0, DetMath.ExpD(double.NegativeInfinity));
        Assert.Equal(double.PositiveInfinity, DetMath.ExpD(double.PositiveInfinity));
        Assert.Equal(System.Math.Exp(-720.5), DetMath.ExpD(-720.5)); // subnormal result
    }

    [Fact]
    public void Log()
    {
        Same(float.NegativeInfinity, DetMath.Log(0f), "log(+0)");
        Same(float.NegativeInfinity, DetMath.Log(-0f), "log(-0)");
        Same(Inf, DetMath.Log(Inf), "log(inf)");
        Same(0f, DetMath.Log(1f), "log(1)");
        Same((float)System.Math.Log(MinSub), DetMath.Log(MinSub), "log(min subnormal)");
        Same((float)System.Math.Log(MaxSub), DetMath.Log(MaxSub), "log(max subnormal)");
        Same((float)System.Math.Log(float.MaxValue), DetMath.Log(float.MaxValue), "log(FLT_MAX)");
        Same((float)System.Math.Log(1.0000001f), DetMath.Log(1.0000001f), "log(1+ulp)");
        Same((float)System.Math.Log(0.99999994f), DetMath.Log(0.99999994f), "log(1-ulp/2)");
        Assert.Equal(double.NegativeInfinity, DetMath.LogD(0.0));
        Assert.Equal(System.Math.Log(double.Epsilon), DetMath.LogD(double.Epsilon));
    }

    [Fact]
    public void SinCos()
    {
        Same(0f, DetMath.Sin(0f), "sin(+0)");
        Same(-0f, DetMath.Sin(-0f), "sin(-0)");
        Same(1f, DetMath.Cos(0f), "cos(+0)");
        Same(1f, DetMath.Cos(-0f), "cos(-0)");
        Same(MinSub, DetMath.Sin(MinSub), "sin(min subnormal)");
        Same(-MaxSub, DetMath.Sin(-MaxSub), "sin(-max subnormal)");
        Same(1f, DetMath.Cos(MaxSub), "cos(max subnormal)");
        // large arguments: Cody–Waite range, its boundary, and Payne–Hanek up to FLT_MAX
        foreach (float x in new[] { 1e5f, 131071.5f, 1.0e6f, 1.6e6f, 1.6000001e6f, 1e7f, 16777216f, 1e10f, 1e20f, 1e30f, float.MaxValue, -float.MaxValue, 1e38f })
        {
            Same((float)System.Math.Sin(x), DetMath.Sin(x), $"sin({x:R})");
            Same((float)System.Math.Cos(x), DetMath.Cos(x), $"cos({x:R})");
        }
        Assert.Equal(System.Math.Sin(1e300), DetMath.SinD(1e300), 1e-15);
        Assert.Equal(System.Math.Cos(-1e22), DetMath.CosD(-1e22), 1e-15);
    }

    [Fact]
    public void Pow()
    {
        // C99/IEEE special cases, checked against MathF.Pow (which follows them)
        float[] xs = [0f, -0f, 1f, -1f, 2f, -2f, 0.5f, -0.5f, Inf, -Inf, MinSub, -MinSub, float.NaN, 10000f, 3f];
        float[] ys = [0f, -0f, 1f, -1f, 2f, -2f, 3f, -3f, 0.5f, -0.5f, Inf, -Inf, float.NaN, 1e10f, -1e10f, 16777217f, 2.5f, 1e-3f];
        foreach (float x in xs)
            foreach (float y in ys)
            {
                float expected = (float)System.Math.Pow(x, y);
                float actual = DetMath.Pow(x, y);
                if (float.IsNaN(expected)) Assert.Equal(DetMath.CanonicalNaNBits, BitConverter.SingleToInt32Bits(actual));
                else Same(expected, actual, $"pow({x:R}, {y:R})");
            }
        Same(8f, DetMath.Pow(2f, 3f), "pow(2,3)");
        Same(-27f, DetMath.Pow(-3f, 3f), "pow(-3,3)");
        Same(1e-4f, DetMath.Pow(10000f, -1f), "pow(1e4,-1)");
        Same(Inf, DetMath.Pow(10f, 39f), "overflow");
        Same(0f, DetMath.Pow(10f, -46f), "underflow");
    }

    [Fact]
    public void Activations()
    {
        Same(1f, DetMath.Tanh(Inf), "tanh(inf)");
        Same(-1f, DetMath.Tanh(-Inf), "tanh(-inf)");
        Same(-0f, DetMath.Tanh(-0f), "tanh(-0)");
        Same(MinSub, DetMath.Tanh(MinSub), "tanh(min subnormal)");
        Same(-1f, DetMath.Tanh(-9.1f), "tanh(-9.1)");
        Same(1f, DetMath.Erf(Inf), "erf(inf)");
        Same(-1f, DetMath.Erf(-Inf), "erf(-inf)");
        Same(-0f, DetMath.Erf(-0f), "erf(-0)");
        Same((float)(MinSub * 1.1283791670955126), DetMath.Erf(MinSub), "erf(min subnormal)");
        Same(0f, DetMath.Sigmoid(-Inf), "sigmoid(-inf)");
        Same(1f, DetMath.Sigmoid(Inf), "sigmoid(inf)");
        Same(0.5f, DetMath.Sigmoid(0f), "sigmoid(0)");
        Same(0.5f, DetMath.Sigmoid(-0f), "sigmoid(-0)");
        foreach (var (name, f) in new (string, Func<float, float>)[] { ("Silu", DetMath.Silu), ("GeluTanh", DetMath.GeluTanh), ("GeluErf", DetMath.GeluErf) })
        {
            Same(-0f, f(-Inf), $"{name}(-inf)");
            Same(Inf, f(Inf), $"{name}(inf)");
            Same(0f, f(0f), $"{name}(+0)");
            Same(-0f, f(-0f), $"{name}(-0)");
            Same(-0f, f(-1000f), $"{name}(-1000)");
            Same(-0f, f(-float.MaxValue), $"{name}(-FLT_MAX)");
            Same(float.MaxValue, f(float.MaxValue), $"{name}(FLT_MAX)");
            Same(1000f, f(1000f), $"{name}(1000)");
        }
        Same(0.5f * MinSub, DetMath.Silu(MinSub), "silu(min subnormal)"); // 0.5*2^-149 rounds to even: 0
    }
}
