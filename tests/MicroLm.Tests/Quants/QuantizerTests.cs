using System.Buffers.Binary;
using MicroLm.Gguf;
using MicroLm.Tensors;
using MicroLm.Tensors.Quants;

namespace MicroLm.Tests.Quants;

public class QuantizerTests
{
    private static readonly GgmlType[] BlockTypes = [GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1];

    /// <summary>Normal-ish values (sum of uniforms) of varied scale per block, plus edge blocks: zeros,
    /// a constant, one outlier, both signs of the same magnitude, tiny values.</summary>
    private static float[] TestValues(int blocks, int seed)
    {
        var rng = new Random(seed);
        var v = new float[blocks * 32];
        for (int b = 0; b < blocks; b++)
        {
            float scale = MathF.Pow(10, rng.Next(-4, 3));
            for (int i = 0; i < 32; i++)
                v[b * 32 + i] = scale * (float)(rng.NextDouble() + rng.NextDouble() + rng.NextDouble() - 1.5);
        }
        var edge = v.AsSpan(0, 6 * 32);
        edge[..32].Clear();
        edge.Slice(32, 32).Fill(0.75f);
        edge.Slice(64, 32).Fill(0.01f); edge[64 + 7] = -3f;
        edge.Slice(96, 32).Fill(0.2f); edge[96 + 3] = 1f; edge[96 + 20] = -1f;
        for (int i = 0; i < 32; i++) edge[128 + i] = (i - 16) * 1e-6f;
        for (int i = 0; i < 32; i++) edge[160 + i] = i % 2 == 0 ? 5f : -5f;
        return v;
    }

    private static float[] Dequantize(GgmlType type, byte[] bytes, int count)
    {
        var output = new float[count];
        TensorTypes.Get(type).Kernel!.Dequantize(bytes, output);
        return output;
    }

    private static float HalfAt(byte[] b, int at) => (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(at)));

    [Fact]
    public void F32_round_trips_exactly()
    {
        var x = TestValues(8, 1);
        Assert.Equal(x, Dequantize(GgmlType.F32, Quantizer.Quantize(GgmlType.F32, x, 64), x.Length));
    }

    [Fact]
    public void F16_round_trips_f16_values_exactly_and_rounds_others_to_nearest_even()
    {
        var rng = new Random(2);
        var halves = new float[4096];
        for (int i = 0; i < halves.Length; i++)
        {
            Half h;
            do h = BitConverter.UInt16BitsToHalf((ushort)rng.Next(65536)); while (!Half.IsFinite(h));
            halves[i] = (float)h;
        }
        Assert.Equal(halves, Dequantize(GgmlType.F16, Quantizer.Quantize(GgmlType.F16, halves, 64), halves.Length));

        // Halfway between 1 and 1 + 2^-10 goes to the even 1; halfway above 1 + 2^-10 goes to 1 + 2^-9.
        Assert.Equal(1f, Dequantize(GgmlType.F16, Quantizer.Quantize(GgmlType.F16, [1f + MathF.Pow(2, -11)], 1), 1)[0]);
        Assert.Equal(1f + MathF.Pow(2, -9), Dequantize(GgmlType.F16, Quantizer.Quantize(GgmlType.F16, [1f + 3 * MathF.Pow(2, -11)], 1), 1)[0]);

        var x = TestValues(8, 3);
        var y = Dequantize(GgmlType.F16, Quantizer.Quantize(GgmlType.F16, x, 32), x.Length);
        for (int i = 0; i < x.Length; i++)
            Assert.True(MathF.Abs(x[i] - y[i]) <= MathF.Abs(x[i]) * MathF.Pow(2, -11) + MathF.Pow(2, -25), $"{x[i]} → {y[i]}"); // half an ulp (or a subnormal step)
    }

    [Fact]
    public void BF16_rounds_to_nearest_even_and_keeps_nan_quiet()
    {
        float Rt(float f) => Dequantize(GgmlType.BF16, Quantizer.Quantize(GgmlType.BF16, [f], 1), 1)[0];
        Assert.Equal(1f, Rt(1f + MathF.Pow(2, -8)));                       // tie → even (1)
        Assert.Equal(1f + MathF.Pow(2, -6), Rt(1f + 3 * MathF.Pow(2, -8))); // tie → even (1 + 2^-6)
        Assert.Equal(1f + MathF.Pow(2, -7), Rt(1f + MathF.Pow(2, -8) + MathF.Pow(2, -20)));
        Assert.True(float.IsNaN(Rt(float.NaN)));
        Assert.Equal(0x7FC1, Quantizer.ToBFloat16Bits(BitConverter.UInt32BitsToSingle(0x7F810000)));
        Assert.Equal(float.PositiveInfinity, Rt(float.PositiveInfinity));
        Assert.Equal(0x0001, Quantizer.ToBFloat16Bits(BitConverter.UInt32BitsToSingle(0x00010000))); // subnormal kept
        var x = TestValues(8, 4);
        var y = Dequantize(GgmlType.BF16, Quantizer.Quantize(GgmlType.BF16, x, 32), x.Length);
        for (int i = 0; i < x.Length; i++)
            Assert.True(MathF.Abs(x[i] - y[i]) <= MathF.Abs(x[i]) * MathF.Pow(2, -8), $"{x[i]} → {y[i]}");
    }

    /// <summary>Per value, |x − dequantized| is at most: half a step (the step d is the float scale), plus
    /// a whole step for the one clamped level of the symmetric 4/5-bit types (the largest positive code
    /// is one short of the magnitude at the other end), plus the scale's F16 rounding times the largest
    /// code, plus the F16 rounding of the offset m for Q4_1/Q5_1, plus float slack.</summary>
    [Theory]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.Q4_1)]
    [InlineData(GgmlType.Q5_0)]
    [InlineData(GgmlType.Q5_1)]
    public void Block_types_round_trip_within_the_format_bound(GgmlType type)
    {
        var x = TestValues(64, 5);
        var bytes = Quantizer.Quantize(type, x, 128);
        Assert.Equal(x.Length / 32 * TensorTypes.Get(type).BytesPerBlock, bytes.Length);
        var y = Dequantize(type, bytes, x.Length);
        int bpb = TensorTypes.Get(type).BytesPerBlock;
        for (int b = 0; b < x.Length / 32; b++)
        {
            var block = x.AsSpan(b * 32, 32);
            float amax = 0, min = float.MaxValue, max = -float.MaxValue;
            foreach (var v in block) { amax = MathF.Max(amax, MathF.Abs(v)); min = MathF.Min(min, v); max = MathF.Max(max, v); }
            float dh = MathF.Abs(HalfAt(bytes, b * bpb));
            float bound = type switch
            {
                GgmlType.Q8_0 => amax / 127 * 0.5f + 127 * MathF.Abs(dh - amax / 127),
                GgmlType.Q4_0 => amax / 8 * 1.0f + 8 * MathF.Abs(dh - amax / 8),
                GgmlType.Q5_0 => amax / 16 * 1.0f + 16 * MathF.Abs(dh - amax / 16),
                GgmlType.Q4_1 => (max - min) / 15 * 0.5f + 15 * MathF.Abs(dh - (max - min) / 15) + MathF.Abs(HalfAt(bytes, b * bpb + 2) - min),
                GgmlType.Q5_1 => (max - min) / 31 * 0.5f + 31 * MathF.Abs(dh - (max - min) / 31) + MathF.Abs(HalfAt(bytes, b * bpb + 2) - min),
                _ => throw new InvalidOperationException(),
            };
            bound += 1e-6f * amax + 1e-30f;
            for (int i = 0; i < 32; i++)
            {
                float err = MathF.Abs(block[i] - y[b * 32 + i]);
                Assert.True(err <= bound, $"{type} block {b} value {i}: {block[i]} → {y[b * 32 + i]}, error {err} > bound {bound}");
            }
        }
        // An all-zero block stays zero; the value of largest magnitude is exact up to the F16 scale for Q8_0/Q4_0/Q5_0.
        Assert.All(y[..32], v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Q4_0_clamps_the_opposite_extreme_and_keeps_the_signed_maximum()
    {
        var x = new float[32];
        x[0] = -1f; x[1] = 1f; // max magnitude first seen is −1: d = 1/8, +1 would need code 16 → clamped to 15 (7/8)
        var bytes = Quantizer.Quantize(GgmlType.Q4_0, x, 32);
        Assert.Equal(0.125f, HalfAt(bytes, 0));
        var y = Dequantize(GgmlType.Q4_0, bytes, 32);
        Assert.Equal(-1f, y[0]);
        Assert.Equal(0.875f, y[1]);
    }

    [Fact]
    public void Q8_0_rounds_halves_away_from_zero()
    {
        var x = new float[32];
        x[0] = 127f; x[1] = 2.5f; x[2] = -2.5f; x[3] = 0.5f; // d = 1 exactly
        var q = Quantizer.Quantize(GgmlType.Q8_0, x, 32);
        Assert.Equal(new sbyte[] { 127, 3, -3, 1 }, q.AsSpan(2, 4).ToArray().Select(b => (sbyte)b).ToArray());
    }

    /// <summary>The stories260K files were made by llama-quantize from the F32 file, with ggml's reference
    /// quantizers: quantizing the F32 weights here must give the same bytes.</summary>
    [SharedTheory]
    [InlineData("stories260K-F16.gguf")]
    [InlineData("stories260K-Q8_0.gguf")]
    [InlineData("stories260K-Q4_0.gguf")]
    [InlineData("stories260K-Q4_K_M-fallback.gguf")]
    public void Matches_llama_quantize_bytes(string file)
    {
        using var f32 = GgufFile.Open(SharedData.Path("models", "gguf", "stories260K-F32.gguf"));
        using var q = GgufFile.Open(SharedData.Path("models", "gguf", file));
        int compared = 0;
        foreach (var t in q.Tensors)
        {
            if (t.Type.Type == GgmlType.F32) continue;
            var source = f32.FindTensor(t.Name)!;
            var floats = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(f32.GetTensorData(source).Span);
            var mine = Quantizer.Quantize(t.Type.Type, floats, (int)t.Columns);
            Assert.True(q.GetTensorData(t).Span.SequenceEqual(mine), $"{file}: {t.Name} ({t.Type.Name}) differs from llama-quantize's bytes");
            compared++;
        }
        Assert.True(compared > 0);
    }

    /// <summary>RowKernel.Dot of a quantized row with a Q8_0 activation equals the exact (double) dot of the
    /// dequantized row with the dequantized activation, up to float rounding: per block the integer sum is
    /// exact, then isum·(d_w·d_x) (+ m_w·s_x) is summed in float over the blocks, each step rounding by at
    /// most 2^-24 relative. With 8 blocks the error is below 16·2^-24·Σ|terms| ≈ 1e-6·Σ|w·x|; the stated
    /// tolerance 4e-6·Σ|w·x| leaves a factor of four.</summary>
    [Theory]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.Q4_1)]
    [InlineData(GgmlType.Q5_0)]
    [InlineData(GgmlType.Q5_1)]
    [InlineData(GgmlType.F32)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void Dot_matches_a_double_precision_dot_of_the_dequantized_operands(GgmlType type)
    {
        const int n = 256;
        var rng = new Random(7);
        var kernel = TensorTypes.Get(type).Kernel!;
        for (int trial = 0; trial < 50; trial++)
        {
            var w = new float[n];
            var act = new Activation(n);
            for (int i = 0; i < n; i++)
            {
                w[i] = (float)(rng.NextDouble() * 2 - 1) * 0.1f + (trial % 5 == 0 ? 0.05f : 0f); // some rows with an offset (Q4_1/Q5_1's m)
                act.Values[i] = (float)(rng.NextDouble() * 2 - 1) * (1 + trial % 3);
            }
            act.Invalidate();
            var row = Quantizer.Quantize(type, w, n);
            var wd = Dequantize(type, row, n);
            double[] xd = new double[n];
            if (kernel.UsesQ8Activation)
            {
                act.EnsureQ8();
                for (int i = 0; i < n; i++) xd[i] = act.Q8[i] * (double)act.Q8Scales[i / 32];
            }
            else for (int i = 0; i < n; i++) xd[i] = act.Values[i];
            double exact = 0, magnitude = 0;
            for (int i = 0; i < n; i++) { exact += wd[i] * xd[i]; magnitude += System.Math.Abs(wd[i] * xd[i]); }
            float got = kernel.Dot(row, act);
            double tolerance = 4e-6 * magnitude + 1e-12;
            Assert.True(System.Math.Abs(got - exact) <= tolerance, $"{type} trial {trial}: dot {got} vs exact {exact}, difference {got - exact}, tolerance {tolerance}");
        }
    }

    /// <summary>The activation's Q8_0 form (vectorized) against its definition spelled out in scalar code:
    /// d = max|v| / 127, q = round-half-even(v · (1/d)), scale rounded to F16, 8·Σq per group of four.
    /// Includes ties (values landing on .5 after scaling), zeros, −0, subnormals and sign pairs.</summary>
    [Fact]
    public void ActivationQ8FormFollowsItsScalarDefinition()
    {
        var v = TestValues(40, 11);
        for (int i = 0; i < 32; i++) v[6 * 32 + i] = i == 0 ? 127f : i - 16 + 0.5f;                // d = 1: every other value is a tie
        for (int i = 0; i < 32; i++) v[7 * 32 + i] = i % 3 == 0 ? -0f : float.Epsilon * i;        // −0 and subnormals
        var x = new Activation(v.Length);
        v.CopyTo(x.Values);
        x.EnsureQ8();
        for (int b = 0; b < v.Length / 32; b++)
        {
            float amax = 0;
            for (int i = 0; i < 32; i++) amax = System.Math.Max(amax, System.Math.Abs(v[b * 32 + i]));
            float d = amax / 127f, id = d != 0 ? 1f / d : 0f;
            int sum = 0;
            for (int g = 0; g < 8; g++)
            {
                int groupSum = 0;
                for (int k = 0; k < 4; k++)
                {
                    int at = b * 32 + 4 * g + k;
                    int q = (int)MathF.Round(v[at] * id, MidpointRounding.ToEven);
                    Assert.Equal(q, x.Q8[at]);
                    groupSum += q;
                }
                Assert.Equal(8 * groupSum, x.Q8GroupSums8[b * 8 + g]);
                sum += groupSum;
            }
            Assert.Equal(BitConverter.SingleToInt32Bits((float)(Half)d), BitConverter.SingleToInt32Bits(x.Q8Scales[b]));
            Assert.Equal(BitConverter.SingleToInt32Bits((float)(Half)d * sum), BitConverter.SingleToInt32Bits(x.Q8ScaledSums[b]));
        }
    }
}
