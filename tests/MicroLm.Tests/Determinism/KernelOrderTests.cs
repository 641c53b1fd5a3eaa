using System.Runtime.Intrinsics;
using MicroLm.Cli;
using MicroLm.Math;
using MicroLm.Sampling;

namespace MicroLm.Tests.Determinism;

[CollectionDefinition("Global kernel switches", DisableParallelization = true)]
public class GlobalKernelSwitches;

/// <summary>Tests that flip process-wide kernel switches; they run alone.</summary>
[Collection("Global kernel switches")]
public class KernelOrderTests
{
    private static float[] Random(int n, int seed)
    {
        var rng = new Rng((ulong)seed);
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (rng.NextFloat() - 0.5f) * (1 << (i % 7));
        return x;
    }

    private static T WithVectorBits<T>(int bits, Func<T> f)
    {
        int saved = Kernels.VectorBits;
        try { Kernels.VectorBits = bits; return f(); }
        finally { Kernels.VectorBits = saved; }
    }

    [Fact]
    public void EveryVectorWidthGivesTheSameBits()
    {
        foreach (int n in new[] { 1, 15, 16, 17, 64, 100, 172, 288, 768, 1000 })
        {
            var a = Random(n, n); var b = Random(n, n + 1);
            float scalar = WithVectorBits(0, () => Kernels.Dot(a, b));
            foreach (int bits in new[] { 128, 256, 512 })
            {
                if (bits > Kernels.VectorBits && bits > 128) continue; // not available on this CPU
                float v = WithVectorBits(bits, () => Kernels.Dot(a, b));
                Assert.Equal(BitConverter.SingleToInt32Bits(scalar), BitConverter.SingleToInt32Bits(v));
            }
        }
    }

    [Fact]
    public void TheFourRowTwoTokenTileHasDotsBitsOnEveryPath()
    {
        // Prefill's float tile (512-bit, and 256-bit in two sweeps per 512-value block; other widths and lengths fall
        // back to Dot4): each of its 8 results must be Dot's bits, including NaN, ±∞, −0 sums and subnormal products.
        foreach (int n in new[] { 16, 48, 288, 768, 1040, 2048, 17, 100 })
        {
            var rows = Enumerable.Range(0, 4).Select(r => Random(n, 10 + r)).ToArray();
            var a = Random(n, 20); var b = Random(n, 21);
            rows[1][n / 2] = float.NaN;
            rows[2][0] = float.PositiveInfinity;
            b[n - 1] = 1e-30f; rows[3][n - 1] = 1e-15f; // a subnormal product
            var zeros = new float[n]; Array.Fill(zeros, -0f);
            foreach (var (x, y) in new[] { (a, b), (zeros, a), (b, zeros) })
                foreach (int bits in new[] { 0, 128, 256, 512 })
                {
                    if (bits > Kernels.VectorBits && bits > 128) continue;
                    var results = WithVectorBits(bits, () => { var r = new float[8]; Kernels.Dot4Rows2Tokens(rows[0], rows[1], rows[2], rows[3], x, y, r); return r; });
                    for (int r = 0; r < 4; r++)
                    {
                        Assert.Equal(BitConverter.SingleToInt32Bits(WithVectorBits(0, () => Kernels.Dot(rows[r], x))), BitConverter.SingleToInt32Bits(results[2 * r]));
                        Assert.Equal(BitConverter.SingleToInt32Bits(WithVectorBits(0, () => Kernels.Dot(rows[r], y))), BitConverter.SingleToInt32Bits(results[2 * r + 1]));
                    }
                }
        }
    }

    [Fact]
    public void TheFourRowFourTokenTileHasDotsBitsWhereItRuns()
    {
        // Prefill's 512-bit 4 × 4 float tile: each of its 16 results (results[4·token + row]) must be Dot's bits,
        // including NaN, ±∞, −0 sums and subnormal products; it declines (false) where the 4 × 2 tile falls back.
        foreach (int n in new[] { 16, 48, 288, 768, 2048, 17, 100 })
        {
            var rows = Enumerable.Range(0, 4).Select(r => Random(n, 30 + r)).ToArray();
            var a = Random(n, 40); var b = Random(n, 41); var c = Random(n, 42);
            rows[1][n / 2] = float.NaN;
            rows[2][0] = float.PositiveInfinity;
            b[n - 1] = 1e-30f; rows[3][n - 1] = 1e-15f; // a subnormal product
            var zeros = new float[n]; Array.Fill(zeros, -0f);
            var tokens = new[] { a, b, zeros, c };
            foreach (int bits in new[] { 0, 128, 256, 512 })
            {
                if (bits > Kernels.VectorBits && bits > 128) continue;
                var results = new float[16];
                bool ran = WithVectorBits(bits, () => Kernels.Dot4Rows4Tokens(rows[0], rows[1], rows[2], rows[3], a, b, zeros, c, results));
                Assert.Equal(bits == 512 && n % 16 == 0, ran);
                if (!ran) continue;
                for (int t = 0; t < 4; t++)
                    for (int r = 0; r < 4; r++)
                        Assert.True(BitConverter.SingleToInt32Bits(WithVectorBits(0, () => Kernels.Dot(rows[r], tokens[t]))) == BitConverter.SingleToInt32Bits(results[4 * t + r]),
                            $"n {n}: row {r} token {t} is {results[4 * t + r]}");
            }
        }
    }

    [Fact]
    public void WeightedRowSumAddsEachProductInOrderOnEveryPath()
    {
        // Attention's weighted values: each output element sums its products from +0 in increasing t.
        foreach (int n in new[] { 5, 48, 64, 72 })
        {
            const int count = 9, stride = 100, offset = 3;
            var rows = Random(offset + count * stride, n);
            var weights = Random(count, n + 1);
            var expected = new float[n];
            for (int t = 0; t < count; t++)
                for (int i = 0; i < n; i++) expected[i] += weights[t] * rows[offset + t * stride + i];
            foreach (int bits in new[] { 0, 128, 256, 512 })
            {
                if (bits > Kernels.VectorBits && bits > 128) continue;
                var output = WithVectorBits(bits, () => { var o = new float[n]; Kernels.WeightedRowSum(weights, rows, offset, stride, o); return o; });
                for (int i = 0; i < n; i++) Assert.Equal(BitConverter.SingleToInt32Bits(expected[i]), BitConverter.SingleToInt32Bits(output[i]));
            }
        }
    }

    [Fact]
    public void DotFollowsTheDocumentedLaneOrder()
    {
        // Spell the contract out in scalar code and compare bits: lanes i % 16, then pairwise folding.
        // 1000 takes the lane-buffer path, multiples of 16 the register-only one (at 256 and 512 bits).
        foreach (int n in new[] { 1000, 1024, 16, 288 })
        {
            var a = Random(n, 3); var b = Random(n, 4);
            var lanes = new float[16];
            for (int i = 0; i < a.Length; i++) lanes[i % 16] += a[i] * b[i];
            for (int j = 0; j < 8; j++) lanes[j] += lanes[j + 8];
            for (int j = 0; j < 4; j++) lanes[j] += lanes[j + 4];
            float expected = (lanes[0] + lanes[2]) + (lanes[1] + lanes[3]);
            foreach (int bits in new[] { 128, 256, 512 })
            {
                if (bits > Kernels.VectorBits && bits > 128) continue;
                Assert.Equal(BitConverter.SingleToInt32Bits(expected), BitConverter.SingleToInt32Bits(WithVectorBits(bits, () => Kernels.Dot(a, b))));
            }
        }
    }

    [SharedFact]
    public void ADifferentReductionOrderChangesTheTraceAndExpectNamesThePosition()
    {
        string model = SharedData.Path("models", "gguf", "stories260K-F32.gguf");
        string golden = Path.GetTempFileName();
        try
        {
            string[] args = ["verify", "-m", model, "-p", "Once upon a time", "-n", "8", "--temp", "0"];
            var o = new StringWriter();
            Assert.Equal(0, CliMain.Run(args, o, new StringWriter()));
            File.WriteAllText(golden, o.ToString());

            // Same order: the check passes.
            Assert.Equal(0, CliMain.Run([.. args, "--expect", golden], new StringWriter(), new StringWriter()));

            Kernels.AlternativeOrderForTests = 1;
            var err = new StringWriter();
            int code;
            try { code = CliMain.Run([.. args, "--expect", golden], new StringWriter(), err); }
            finally { Kernels.AlternativeOrderForTests = 0; }
            Assert.NotEqual(0, code);
            Assert.Contains("mismatch at position 0", err.ToString());
        }
        finally { File.Delete(golden); }
    }

    [SharedFact]
    public void ScalarPathGivesTheSameTraceAsTheVectorPath()
    {
        string model = SharedData.Path("models", "gguf", "stories260K-Q8_0.gguf");
        string[] args = ["verify", "-m", model, "-p", "Once upon a time", "-n", "6", "--temp", "0.8", "--seed", "5"];
        var native = new StringWriter();
        Assert.Equal(0, CliMain.Run(args, native, new StringWriter()));
        var scalar = WithVectorBits(0, () => { var w = new StringWriter(); CliMain.Run(args, w, new StringWriter()); return w.ToString(); });
        Assert.Equal(native.ToString(), scalar);
    }
}

[Collection("Global kernel switches")]
public class QuantizedKernelPathTests
{
    /// <summary>The dot with the runtime's one width switch at <paramref name="bits"/> (the integer dots follow it:
    /// 256-bit paths from 256 up on x86, the 128-bit path below).</summary>
    private static float DotWithBits(Tensors.Quants.RowKernel k, byte[] row, Tensors.Quants.Activation x, int bits)
    {
        int saved = Kernels.VectorBits;
        try
        {
            Kernels.VectorBits = bits;
            return k.Dot(row, x);
        }
        finally { Kernels.VectorBits = saved; }
    }

    [Theory]
    [InlineData(Tensors.GgmlType.Q8_0)]
    [InlineData(Tensors.GgmlType.Q4_0)]
    [InlineData(Tensors.GgmlType.F16)]
    [InlineData(Tensors.GgmlType.Q5_0)]
    [InlineData(Tensors.GgmlType.Q4_1)]
    public void QuantizedDotGivesTheSameBitsOnEveryPath(Tensors.GgmlType type)
    {
        var rng = new Rng(9);
        foreach (int n in new[] { 32, 64, 288, 768 })
        {
            var w = new float[n];
            for (int i = 0; i < n; i++) w[i] = (rng.NextFloat() - 0.5f) * 2;
            var row = Tensors.Quants.Quantizer.Quantize(type, w, n);
            var x = new Tensors.Quants.Activation(n);
            for (int i = 0; i < n; i++) x.Values[i] = (rng.NextFloat() - 0.5f) * 4;
            x.EnsureQ8();
            var kernel = Tensors.TensorTypes.Get(type).Kernel!;
            float reference = DotWithBits(kernel, row, x, 0);
            foreach (int bits in new[] { 128, 256, 512 })
            {
                if (bits > Kernels.VectorBits) continue;
                float v = DotWithBits(kernel, row, x, bits);
                Assert.Equal(BitConverter.SingleToInt32Bits(reference), BitConverter.SingleToInt32Bits(v));
            }
        }
    }

    /// <summary>Every batched path gives each (row, token) the one-row dot's bits. 4128 values: float rows past 16 KB
    /// (four of them no longer fit L1), which the four-row prefill tile takes since its cap is sized to L2.</summary>
    [Theory]
    [InlineData(Tensors.GgmlType.F32, 288)]
    [InlineData(Tensors.GgmlType.F32, 4128)]
    [InlineData(Tensors.GgmlType.F16, 288)]
    [InlineData(Tensors.GgmlType.F16, 4128)]
    [InlineData(Tensors.GgmlType.Q8_0, 288)]
    [InlineData(Tensors.GgmlType.Q4_0, 288)]
    [InlineData(Tensors.GgmlType.Q5_1, 288)]
    public void BatchedDotsEqualSingleDotsOnEveryPath(Tensors.GgmlType type, int n)
    {
        var rng = new Rng(21);
        const int tokens = 9; // 9: groups of four, a tail, and the Q4_0 unpack-once path (8 or more)
        var w = new float[n];
        for (int i = 0; i < n; i++) w[i] = (rng.NextFloat() - 0.5f) * 2;
        var row = Tensors.Quants.Quantizer.Quantize(type, w, n);
        var xs = new Tensors.Quants.Activation[tokens];
        for (int t = 0; t < tokens; t++)
        {
            xs[t] = new Tensors.Quants.Activation(n);
            for (int i = 0; i < n; i++) xs[t].Values[i] = (rng.NextFloat() - 0.5f) * 3;
            xs[t].EnsureQ8();
        }
        var kernel = Tensors.TensorTypes.Get(type).Kernel!;
        foreach (int bits in new[] { 0, 128, 256, 512 })
        {
            if (bits > Kernels.VectorBits) continue;
            int savedFloat = Kernels.VectorBits;
            try
            {
                Kernels.VectorBits = bits;
                var batched = new float[tokens];
                kernel.DotMany(row, xs, tokens, batched, 1, 0);
                for (int t = 0; t < tokens; t++)
                    Assert.Equal(BitConverter.SingleToInt32Bits(kernel.Dot(row, xs[t])), BitConverter.SingleToInt32Bits(batched[t]));
                // Five tokens: the four-activation pass and a tail, without Q4_0's unpack-once path.
                var five = new float[5];
                kernel.DotMany(row, xs, 5, five, 1, 0);
                for (int t = 0; t < 5; t++)
                    Assert.Equal(BitConverter.SingleToInt32Bits(batched[t]), BitConverter.SingleToInt32Bits(five[t]));

                // Four rows against one activation (decode over a cached matrix).
                var rows = new byte[4 * row.Length];
                for (int k = 0; k < 4; k++)
                {
                    var wk = w.Select((v, i) => v * (k + 1) - 0.01f * i).ToArray();
                    Tensors.Quants.Quantizer.Quantize(type, wk, n).CopyTo(rows, k * row.Length);
                }
                // Two rows against a batch (prefill tiles), with and without Q4_0's unpack-once path.
                foreach (int count in new[] { tokens, 5 })
                {
                    var two = new float[count * 2];
                    kernel.DotMany2(rows.AsSpan(0, 2 * row.Length), row.Length, xs, count, two, 2, 0);
                    for (int t = 0; t < count; t++)
                        for (int k = 0; k < 2; k++)
                            Assert.Equal(BitConverter.SingleToInt32Bits(kernel.Dot(rows.AsSpan(k * row.Length, row.Length), xs[t])), BitConverter.SingleToInt32Bits(two[t * 2 + k]));
                }
                // Four rows against a batch (prefill, float kernels): each dot equals Dot, where the kernel takes it.
                foreach (int count in new[] { tokens, 5 })
                {
                    var many = new float[count * 4];
                    bool tiled = kernel.DotManyRows4(rows, row.Length, xs, count, many, 4, 0);
                    if (type is Tensors.GgmlType.F32 or Tensors.GgmlType.F16 && bits >= 256) Assert.True(tiled, $"{type} rows of {n} values skip the four-row prefill tile");
                    if (!tiled) continue;
                    for (int t = 0; t < count; t++)
                        for (int k = 0; k < 4; k++)
                            Assert.Equal(BitConverter.SingleToInt32Bits(kernel.Dot(rows.AsSpan(k * row.Length, row.Length), xs[t])), BitConverter.SingleToInt32Bits(many[t * 4 + k]));
                }
                var four = new float[4];
                kernel.Dot4Rows(rows, row.Length, xs[0], four);
                for (int k = 0; k < 4; k++)
                    Assert.Equal(BitConverter.SingleToInt32Bits(kernel.Dot(rows.AsSpan(k * row.Length, row.Length), xs[0])), BitConverter.SingleToInt32Bits(four[k]));
            }
            finally { Kernels.VectorBits = savedFloat; }
        }
    }

    /// <summary>Prefill through <see cref="Tensors.WeightMatrix.MatMul"/> (four-row × four-token tiles, their token
    /// tails, two-row tiles, single rows) gives every (row, token) exactly the bits of the one-row dot at the scalar
    /// setting, at every width: 11 rows (not a multiple of any tile), row ranges that start off the tile grid, token
    /// counts around the four- and eight-token tiles (AVX-512: two tokens per vector, <see cref="Tensors.Quants.TokenPairs"/>), quants at +127, −127 and −128 (Q4_0: nibbles 0 and 15), and block scales that
    /// are NaN, ±inf, subnormal, ±0 and the largest half.</summary>
    [Theory]
    [InlineData(Tensors.GgmlType.Q8_0)]
    [InlineData(Tensors.GgmlType.Q4_0)]
    public void PrefillTilesGiveEachRowAndTokenTheBitsOfDot(Tensors.GgmlType type)
    {
        const int n = 96, rows = 11, maxTokens = 27;
        var info = Tensors.TensorTypes.Get(type);
        int rowBytes = (int)info.RowBytes(n), blocks = n / 32;
        var rng = new Rng(31);
        ushort[] special = [0x7E00, 0x7C00, 0xFC00, 0x0001, 0x8001, 0x03FF, 0x0000, 0x8000, 0x7BFF, 0xFBFF];
        var data = new byte[rows * rowBytes];
        int specials = 0;
        for (int r = 0; r < rows; r++)
            for (int b = 0; b < blocks; b++)
            {
                int at = r * rowBytes + b * info.BytesPerBlock;
                // One block in four takes a special scale (the rest ordinary magnitudes 2^-7..2^-1), so most dots stay finite.
                ushort h = (r * blocks + b) % 4 == 1 ? special[specials++ % special.Length] : (ushort)((0x2000 + (int)(rng.NextUInt64() % 0x1800)) | (rng.NextUInt64() % 2 == 0 ? 0 : 0x8000));
                data[at] = (byte)h;
                data[at + 1] = (byte)(h >> 8);
                for (int i = 2; i < info.BytesPerBlock; i++)
                    data[at + i] = (rng.NextUInt64() % 6) switch { 0 => 0x7F, 1 => 0x81, 2 => 0x80, 3 => 0xF0, _ => (byte)rng.NextUInt64() };
            }
        var file = MicroLm.Gguf.GgufFile.FromMemory(new MicroLm.Gguf.GgufWriter().Add("general.architecture", "llama").AddTensor("w", type, [n, rows], data).ToArray());
        var matrix = new Tensors.WeightMatrix(file, file.Tensors[0]);
        var xs = new Tensors.Quants.Activation[maxTokens];
        for (int t = 0; t < maxTokens; t++)
        {
            xs[t] = new Tensors.Quants.Activation(n);
            float magnitude = t switch { 3 => 1e-40f, 5 => 3e38f, _ => 3 };
            for (int i = 0; i < n; i++) xs[t].Values[i] = (rng.NextFloat() - 0.5f) * magnitude;
            xs[t].Values[(7 * t) % n] = t % 2 == 0 ? magnitude : -magnitude; // a quant at ±127 in one block
            xs[t].EnsureQ8();
        }
        var kernel = info.Kernel!;
        var reference = new int[maxTokens, rows];
        for (int t = 0; t < maxTokens; t++)
            for (int r = 0; r < rows; r++)
                reference[t, r] = BitConverter.SingleToInt32Bits(DotWithBits(kernel, data.AsSpan(r * rowBytes, rowBytes).ToArray(), xs[t], 0));
        int saved = Kernels.VectorBits;
        try
        {
            foreach (int bits in new[] { 0, 128, 256, 512 })
            {
                if (bits > saved) continue;
                Kernels.VectorBits = bits;
                foreach (int count in new[] { 1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 16, 19, 24, 27 })
                    foreach (var (start, end) in new[] { (0, rows), (1, rows - 1), (2, rows), (0, 7), (3, 4) })
                    {
                        var output = new float[count * rows];
                        Array.Fill(output, 12345f);
                        matrix.MatMul(xs, count, output, start, end);
                        for (int t = 0; t < count; t++)
                            for (int r = 0; r < rows; r++)
                            {
                                int expected = r >= start && r < end ? reference[t, r] : BitConverter.SingleToInt32Bits(12345f);
                                Assert.True(expected == BitConverter.SingleToInt32Bits(output[t * rows + r]),
                                    $"{type} width {bits}, {count} tokens, rows [{start}, {end}): row {r} token {t} is {output[t * rows + r]}, Dot gives {BitConverter.Int32BitsToSingle(expected)}");
                            }
                    }
            }
        }
        finally { Kernels.VectorBits = saved; }
    }

    /// <summary>The activation's Q8_0 form (quants, scales, scaled sums, group sums) has the same bits at every width:
    /// ordinary blocks, ties after scaling, −0 and subnormals, the largest floats, and blocks holding ±inf or NaN.</summary>
    [Fact]
    public void ActivationQ8FormIsTheSameAtEveryWidth()
    {
        var rng = new Rng(17);
        const int blocks = 12, n = blocks * 32;
        var v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (rng.NextFloat() - 0.5f) * 6;
        for (int i = 0; i < 32; i++) v[32 + i] = i == 0 ? 127f : i - 16 + 0.5f;                 // d = 1: ties
        for (int i = 0; i < 32; i++) v[64 + i] = i % 3 == 0 ? -0f : float.Epsilon * i;          // −0, subnormals
        for (int i = 0; i < 32; i++) v[96 + i] = i % 2 == 0 ? float.MaxValue : -float.MaxValue / (i + 1);
        v[128 + 5] = float.PositiveInfinity; v[160 + 9] = float.NegativeInfinity; v[192 + 31] = float.NaN;
        for (int i = 0; i < 32; i++) v[224 + i] = 0;
        for (int i = 0; i < 32; i++) v[256 + i] = i % 2 == 0 ? -127f : 127f;
        (sbyte[] Q, float[] Scales, float[] Sums, int[] Groups) At(int bits)
        {
            int saved = Kernels.VectorBits;
            try
            {
                Kernels.VectorBits = bits;
                var x = new Tensors.Quants.Activation(n);
                v.CopyTo(x.Values);
                x.EnsureQ8();
                return (x.Q8.ToArray(), x.Q8Scales, x.Q8ScaledSums, x.Q8GroupSums8);
            }
            finally { Kernels.VectorBits = saved; }
        }
        var reference = At(0);
        foreach (int bits in new[] { 128, 256, 512 })
        {
            if (bits > Kernels.VectorBits) continue;
            var got = At(bits);
            Assert.Equal(reference.Q, got.Q);
            Assert.Equal(reference.Groups, got.Groups);
            Assert.Equal(reference.Scales.Select(BitConverter.SingleToInt32Bits), got.Scales.Select(BitConverter.SingleToInt32Bits));
            Assert.Equal(reference.Sums.Select(BitConverter.SingleToInt32Bits), got.Sums.Select(BitConverter.SingleToInt32Bits));
        }
    }

    [Fact]
    public void F16TensorsWithInfinityOrNaNAreRefused()
    {
        var data = new byte[64];
        BitConverter.TryWriteBytes(data.AsSpan(10), (ushort)0xFC00); // -inf at element 5
        var e = Assert.Throws<MicroLmException>(() => Tensors.Quants.F16Kernel.Instance.Validate("blk.0.attn_q.weight", data));
        Assert.Contains("blk.0.attn_q.weight", e.Message);
        Assert.Contains("element 5", e.Message);
        Tensors.Quants.F16Kernel.Instance.Validate("ok", new byte[64]);
    }

    [Fact]
    public void HalfConversionInRegistersEqualsTheIeeeConversion()
    {
        for (int i = 0; i < 65536; i += 8)
        {
            var h = System.Runtime.Intrinsics.Vector256.Create(Enumerable.Range(i, 8).Select(v => (uint)v).ToArray());
            var f = Tensors.Quants.F16Kernel.ToSingle(h);
            var f128 = Tensors.Quants.F16Kernel.ToSingle(h.GetLower());
            for (int j = 0; j < 8; j++)
            {
                float expected = (float)BitConverter.UInt16BitsToHalf((ushort)(i + j));
                if (!float.IsFinite(expected)) continue; // refused at load (F16Kernel.Validate)
                Assert.Equal(BitConverter.SingleToInt32Bits(expected), BitConverter.SingleToInt32Bits(f.GetElement(j)));
                if (j < 4) Assert.Equal(BitConverter.SingleToInt32Bits(expected), BitConverter.SingleToInt32Bits(f128.GetElement(j)));
            }
        }
    }

    [Fact]
    public void SignExtendingHalfConversionsEqualTheIeeeConversion()
    {
        // Every half, as the decode loops read them: 16 and 8 at a time from memory, and 4 already widened.
        var bytes = new byte[65536 * 2 + 64];
        for (int i = 0; i < 65536; i++) BitConverter.TryWriteBytes(bytes.AsSpan(2 * i), (ushort)i);
        ref byte start = ref bytes[0];
        for (int i = 0; i < 65536; i += 16)
        {
            var f16 = Tensors.Quants.F16Kernel.Values.Load16(ref start, i);
            var f8 = Tensors.Quants.F16Kernel.Values.Load8(ref start, i + 8);
            var f4 = Tensors.Quants.F16Kernel.Values.FromSignExtended(System.Runtime.Intrinsics.Vector128.Create(
                (int)(short)i, (short)(i + 1), (short)(i + 2), (short)(i + 3)));
            for (int j = 0; j < 16; j++)
            {
                float expected = (float)BitConverter.UInt16BitsToHalf((ushort)(i + j));
                if (!float.IsFinite(expected)) continue; // refused at load (F16Kernel.Validate)
                int bits = BitConverter.SingleToInt32Bits(expected);
                Assert.Equal(bits, BitConverter.SingleToInt32Bits(f16.GetElement(j)));
                if (j >= 8) Assert.Equal(bits, BitConverter.SingleToInt32Bits(f8.GetElement(j - 8)));
                if (j < 4) Assert.Equal(bits, BitConverter.SingleToInt32Bits(f4.GetElement(j)));
            }
        }
    }
}
