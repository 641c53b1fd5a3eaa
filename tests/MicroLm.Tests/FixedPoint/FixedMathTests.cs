using MicroLm.FixedPoint;

namespace MicroLm.Tests.FixedPoint;

/// <summary>The integer functions against double-precision references. Tolerances are in the output's
/// own units (Q2.30 or Q16.16 raw), a few units of the last place: the functions round once at the end
/// and carry at least 2⁻²⁸ relative accuracy inside (docs/fixed-point.md).</summary>
public class FixedMathTests
{
    private static IEnumerable<int> Inputs(int from, int to, int count)
    {
        var rng = new Random(5);
        for (int i = 0; i < count; i++) yield return rng.Next(from, to);
        yield return from; yield return to; yield return 0; yield return -1; yield return 1;
    }

    [Fact]
    public void ExpNegative_is_within_4_units_of_Q30()
    {
        foreach (int x in Inputs(-(30 << 16), 0, 200_000).Where(v => v <= 0))
        {
            double expected = System.Math.Exp(x / 65536.0) * (1 << 30);
            Assert.True(System.Math.Abs(FixedMath.ExpNegative(x) - expected) <= 4, $"exp({x / 65536.0}) = {FixedMath.ExpNegative(x)}, expected {expected}");
        }
    }

    [Fact]
    public void Sigmoid_Silu_and_Gelu_match_double_within_a_few_units()
    {
        foreach (int x in Inputs(-(40 << 16), 40 << 16, 200_000))
        {
            double v = x / 65536.0;
            double sig = 1 / (1 + System.Math.Exp(-v));
            Assert.True(System.Math.Abs(FixedMath.Sigmoid(x) - sig * (1 << 30)) <= 4, $"sigmoid({v})");
            Assert.True(System.Math.Abs(FixedMath.Silu(x) - v * sig * 65536) <= 2, $"silu({v}) = {FixedMath.Silu(x) / 65536.0}");
            double gelu = 0.5 * v * (1 + System.Math.Tanh(System.Math.Sqrt(2 / System.Math.PI) * (v + 0.044715 * v * v * v)));
            Assert.True(System.Math.Abs(FixedMath.Gelu(x) - gelu * 65536) <= 2, $"gelu({v}) = {FixedMath.Gelu(x) / 65536.0}, expected {gelu}");
        }
        Assert.Equal(0, FixedMath.Silu(int.MinValue));
    }

    [Fact]
    public void CosSin_of_turns_match_double_within_1_unit_of_Q30()
    {
        var rng = new Random(3);
        for (int i = 0; i < 100_000; i++)
        {
            ulong turns = (ulong)rng.NextInt64() << 1 ^ (ulong)rng.Next(2);
            FixedMath.CosSin(turns, out int c, out int s);
            double angle = turns / 18446744073709551616.0 * 2 * System.Math.PI;
            Assert.True(System.Math.Abs(c - System.Math.Cos(angle) * (1 << 30)) <= 1.5 && System.Math.Abs(s - System.Math.Sin(angle) * (1 << 30)) <= 1.5, $"angle {angle}: {c}, {s}");
        }
    }

    [Theory]
    [InlineData(10000f, 64, 100)]
    [InlineData(10000f, 8, 2047)]
    [InlineData(500000f, 128, 4000)]
    public void Rope_angles_match_double(float freqBase, int dims, int pos)
    {
        var rope = new FixedRope(dims, BitConverter.SingleToUInt32Bits(freqBase), neoxStyle: false);
        var cos = new int[dims / 2]; var sin = new int[dims / 2];
        rope.Angles(pos, cos, sin);
        for (int k = 0; k < dims / 2; k++)
        {
            double theta = pos * System.Math.Pow(freqBase, -2.0 * k / dims);
            // The angle is pos·frequency: a relative frequency error of 2⁻⁴⁰ moves it by pos·2⁻⁴⁰ radians.
            Assert.True(System.Math.Abs(cos[k] - System.Math.Cos(theta) * (1 << 30)) <= 3 && System.Math.Abs(sin[k] - System.Math.Sin(theta) * (1 << 30)) <= 3,
                $"k {k}: cos {cos[k] / (double)(1 << 30)} vs {System.Math.Cos(theta)}, sin {sin[k] / (double)(1 << 30)} vs {System.Math.Sin(theta)}");
        }
    }

    [Fact]
    public void Sqrt_is_the_exact_floor()
    {
        var rng = new Random(9);
        for (int i = 0; i < 10_000; i++)
        {
            var n = new UInt128((ulong)rng.NextInt64() >> rng.Next(64), (ulong)rng.NextInt64());
            UInt128 r = FixedMath.Sqrt(n);
            Assert.True(r * r <= n && (r + 1) * (r + 1) > n);
        }
        Assert.Equal(ulong.MaxValue, FixedMath.Sqrt(UInt128.MaxValue));
    }

    [Fact]
    public void Norms_match_double_within_2_units()
    {
        var rng = new Random(11);
        int n = 288;
        var x = new int[n]; var w = new int[n]; var b = new int[n]; var o = new int[n];
        for (int trial = 0; trial < 200; trial++)
        {
            double scale = System.Math.Pow(2, rng.Next(-10, 12));
            for (int i = 0; i < n; i++)
            {
                x[i] = (int)System.Math.Round((rng.NextDouble() * 2 - 1 + 0.3) * scale * 65536);
                w[i] = (int)System.Math.Round((0.5 + rng.NextDouble()) * 65536);
                b[i] = (int)System.Math.Round((rng.NextDouble() - 0.5) * 65536);
            }
            var guard = new RangeGuard();
            double eps = 1e-5;
            FixedNorm.Rms(x, w, FixedNorm.Epsilon(BitConverter.SingleToUInt32Bits(1e-5f)), o, guard);
            double ms = x.Sum(v => (v / 65536.0) * (v / 65536.0)) / n;
            double epsF = (double)1e-5f;
            for (int i = 0; i < n; i++)
                Assert.True(System.Math.Abs(o[i] - x[i] / 65536.0 / System.Math.Sqrt(ms + epsF) * (w[i] / 65536.0) * 65536) <= 2, $"rms trial {trial} i {i}");
            FixedNorm.Layer(x, w, b, FixedNorm.Epsilon(BitConverter.SingleToUInt32Bits(1e-5f)), o, guard);
            double mean = x.Average(v => v / 65536.0);
            double var = x.Sum(v => (v / 65536.0 - mean) * (v / 65536.0 - mean)) / n;
            for (int i = 0; i < n; i++)
                Assert.True(System.Math.Abs(o[i] - ((x[i] / 65536.0 - mean) / System.Math.Sqrt(var + epsF) * (w[i] / 65536.0) + b[i] / 65536.0) * 65536) <= 2, $"layer trial {trial} i {i}");
            Assert.Equal(0, guard.Count);
            _ = eps;
        }
    }

    [Fact]
    public void Logits_become_floats_exactly()
    {
        var rng = new Random(1);
        for (int i = 0; i < 200_000; i++)
        {
            int raw = i < 100 ? i - 50 : rng.Next(int.MinValue, int.MaxValue);
            float expected = (float)(raw / 65536.0); // exact in double; one rounding to float, ties to even
            Assert.Equal(BitConverter.SingleToInt32Bits(expected), FixedLogits.Float32Bits(raw));
        }
        Assert.Equal(BitConverter.SingleToInt32Bits(-32768f), FixedLogits.Float32Bits(int.MinValue));
    }
}
