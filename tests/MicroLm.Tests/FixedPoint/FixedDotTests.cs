using MicroLm.FixedPoint;

namespace MicroLm.Tests.FixedPoint;

/// <summary>The block sums of the fixed-point matmul: every vector path (also the ones not accelerated on
/// this machine, which then run the BCL's software fallback) returns the scalar loop's exact integer,
/// including at the extremes of the formats (x = ±2³¹, q = ±32767 or ±128).</summary>
public class FixedDotTests
{
    private static long Scalar(short[] q, int[] x)
    {
        long sum = 0;
        for (int i = 0; i < q.Length; i++) sum += (long)q[i] * x[i];
        return sum;
    }

    [Fact]
    public void Every_path_gives_the_exact_block_sum()
    {
        var rng = new Random(21);
        var q = new short[32]; var x = new int[32];
        for (int trial = 0; trial < 20_000; trial++)
        {
            bool narrow = trial % 2 == 0;
            int kind = trial % 7;
            for (int i = 0; i < 32; i++)
            {
                q[i] = narrow ? (short)rng.Next(-128, 129) : (short)rng.Next(-32767, 32768);
                x[i] = kind switch
                {
                    0 => int.MaxValue, 1 => int.MinValue, 2 => rng.Next(-70000, 70000),
                    3 => i % 2 == 0 ? int.MinValue : int.MaxValue,
                    _ => rng.Next(int.MinValue, int.MaxValue),
                };
                if (kind == 4) q[i] = narrow ? (short)(i % 2 == 0 ? -128 : 128) : (short)(i % 2 == 0 ? -32767 : 32767);
            }
            long expected = Scalar(q, x);
            if (narrow)
            {
                Assert.Equal(expected, FixedMatrix.Sum128(q, x, narrow: true));
                Assert.Equal(expected, FixedMatrix.Sum256(q, x, narrow: true));
            }
            Assert.Equal(expected, FixedMatrix.Sum128(q, x, narrow: false));
            Assert.Equal(expected, FixedMatrix.Sum256(q, x, narrow: false));
            Assert.Equal(expected, FixedMatrix.BlockSum(q, x, narrow));
            Assert.Equal(expected, FixedMatrix.BlockSum(q.AsSpan(0, 32), x, false));
        }
    }
}
