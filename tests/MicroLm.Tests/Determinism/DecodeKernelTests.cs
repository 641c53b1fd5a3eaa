using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using MicroLm.Math;
using MicroLm.Sampling;
using MicroLm.Tensors;
using MicroLm.Tensors.Quants;

namespace MicroLm.Tests.Determinism;

/// <summary>Decode (one token, matrix × vector) kernels give every row the bits of the definition at every width.</summary>
[Collection("Global kernel switches")]
public class DecodeKernelTests
{
    private static readonly float TwoPow112 = BitConverter.Int32BitsToSingle(0x77800000);

    /// <summary>Activation values at the edges of F16Kernel.Scaled's exactness: ±0, the smallest and largest subnormals,
    /// the smallest normal, values whose products with small halves underflow, and the largest |x| below 2^16.</summary>
    private static readonly float[] EdgeActivations =
    [
        0f, -0f, float.Epsilon, -float.Epsilon, BitConverter.Int32BitsToSingle(0x007FFFFF), -BitConverter.Int32BitsToSingle(0x007FFFFF),
        BitConverter.Int32BitsToSingle(0x00800000), 1e-30f, -3.5e-20f, 1f, -1f, 0.333f, 1234.5f,
        BitConverter.Int32BitsToSingle(0x477FFFFF), -BitConverter.Int32BitsToSingle(0x477FFFFF),
    ];

    [Fact]
    public void ScaledHalfTimesScaledActivationEqualsHalfTimesActivation()
    {
        // Every finite half (63,488), read as the decode loops read them (16, 8 and 4 at a time), times each edge
        // activation scaled by 2^112: the same bits as the IEEE half's float times the activation.
        var bytes = new byte[65536 * 2 + 64];
        for (int i = 0; i < 65536; i++) BitConverter.TryWriteBytes(bytes.AsSpan(2 * i), (ushort)i);
        ref byte start = ref bytes[0];
        int checkedProducts = 0;
        foreach (float x in EdgeActivations)
        {
            float xs = x * TwoPow112;
            Assert.Equal(x, xs / TwoPow112); // the scaling is exact
            var x16 = Vector512.Create(xs);
            for (int i = 0; i < 65536; i += 16)
            {
                var p16 = F16Kernel.Scaled.Load16(ref start, i) * x16;
                var p8 = F16Kernel.Scaled.Load8(ref start, i + 8) * Vector256.Create(xs);
                var p4 = F16Kernel.Scaled.FromSignExtended(Vector128.Create((int)(short)i, (short)(i + 1), (short)(i + 2), (short)(i + 3))) * Vector128.Create(xs);
                for (int j = 0; j < 16; j++)
                {
                    float half = (float)BitConverter.UInt16BitsToHalf((ushort)(i + j));
                    if (!float.IsFinite(half)) continue; // refused at load (F16Kernel.Validate)
                    int expected = BitConverter.SingleToInt32Bits(half * x);
                    Assert.True(expected == BitConverter.SingleToInt32Bits(p16.GetElement(j)), $"half 0x{i + j:X4} × {x:R}: {p16.GetElement(j):R}, expected {half * x:R}");
                    if (j >= 8) Assert.Equal(expected, BitConverter.SingleToInt32Bits(p8.GetElement(j - 8)));
                    if (j < 4) Assert.Equal(expected, BitConverter.SingleToInt32Bits(p4.GetElement(j)));
                    checkedProducts++;
                }
            }
        }
        Assert.Equal(63488 * EdgeActivations.Length, checkedProducts);
    }

    /// <summary>F16Kernel.Pairs' three loads (the odd halves of 8 pairs, the even ones from the pairs one half earlier,
    /// and the even ones in place) read every finite half (63,488) at both parities, with arbitrary neighbours in the
    /// other 16 bits of each lane, as Scaled reads it: times each edge activation scaled by 2^112, the same bits as the
    /// IEEE half's float times the activation, and each lane holds the half the contract puts there.</summary>
    [Fact]
    public void PairLoadsReadEveryFiniteHalfAtBothParities()
    {
        if (!Vector256.IsHardwareAccelerated) return; // the pair loops run at 256 bits only
        int checkedProducts = 0;
        foreach (int shift in new[] { 0, 1 }) // half j at row index j + shift: every half at an even and at an odd index
        {
            var bytes = new byte[2 + 2 * (65536 + 16 + shift)];
            for (int j = 0; j < 65536; j++) BitConverter.TryWriteBytes(bytes.AsSpan(2 + 2 * (j + shift)), (ushort)j);
            ref byte row = ref bytes[2]; // Even reads one half before index i
            foreach (float x in EdgeActivations)
            {
                var xs = Vector256.Create(x * TwoPow112);
                for (int i = 0; i < 65536 + shift; i += 16)
                {
                    var even = F16Kernel.Pairs.Even(ref row, 2 * i) * xs;
                    var inPlace = F16Kernel.Pairs.EvenFirst(ref Unsafe.Add(ref row, 2 * i)) * xs;
                    var odd = F16Kernel.Pairs.Odd(ref row, 2 * i) * xs;
                    for (int k = 0; k < 16; k++)
                    {
                        int index = i + k, value = index - shift;
                        if (value < 0 || value > 65535) continue;
                        float half = (float)BitConverter.UInt16BitsToHalf((ushort)value);
                        if (!float.IsFinite(half)) continue; // refused at load (F16Kernel.Validate)
                        int expected = BitConverter.SingleToInt32Bits(half * x);
                        if (k % 2 == 0)
                        {
                            Assert.True(expected == BitConverter.SingleToInt32Bits(even.GetElement(k / 2)), $"even half 0x{value:X4} × {x:R}: {even.GetElement(k / 2):R}, expected {half * x:R}");
                            Assert.Equal(expected, BitConverter.SingleToInt32Bits(inPlace.GetElement(k / 2)));
                        }
                        else Assert.True(expected == BitConverter.SingleToInt32Bits(odd.GetElement(k / 2)), $"odd half 0x{value:X4} × {x:R}: {odd.GetElement(k / 2):R}, expected {half * x:R}");
                        checkedProducts++;
                    }
                }
            }
        }
        Assert.Equal(2 * 63488 * EdgeActivations.Length, checkedProducts);
    }

    [Fact]
    public void HalfScaledFormExistsOnlyWhereItIsExact()
    {
        int saved = Kernels.VectorBits;
        try
        {
            // The pair form is made at 256 bits only (512-bit decode widens the halves in one load).
            foreach (int bits in new[] { 128, 256, 512 })
            {
                if (bits > saved) continue;
                Kernels.VectorBits = bits;
                HalfScaledFormAtThisWidth();
            }
        }
        finally { Kernels.VectorBits = saved; }
    }

    private static void HalfScaledFormAtThisWidth()
    {
        float below = BitConverter.Int32BitsToSingle(0x477FFFFF); // the largest float below 2^16
        foreach (var (value, exact) in new[] { (below, true), (-below, true), (65536f, false), (-65536f, false), (3e38f, false),
            (float.PositiveInfinity, false), (float.NegativeInfinity, false), (float.NaN, false), (float.Epsilon, true) })
            foreach (int n in new[] { 5, 32, 33 }) // the odd value in the vector part and in the scalar tail
                foreach (int at in new[] { 0, n - 1 })
                {
                    var x = new Activation(n);
                    for (int i = 0; i < n; i++) x.Values[i] = 0.5f + i; // distinct: the pair form's order shows
                    x.Values[at] = value;
                    Assert.Null(x.HalfScaled); // not made yet
                    x.EnsureHalfScaled();
                    if (!exact) { Assert.Null(x.HalfScaled); Assert.Null(x.HalfPairs); continue; }
                    Assert.NotNull(x.HalfScaled);
                    for (int i = 0; i < n; i++) Assert.Equal(x.Values[i] * TwoPow112, x.HalfScaled![i]);
                    Assert.Equal(Kernels.VectorBits == 256 && System.Runtime.Intrinsics.X86.Avx2.IsSupported, x.HalfPairs is not null);
                    for (int i = 0; i < (n & ~15) && x.HalfPairs is { } pairs; i++) // per 16: the even values, then the odd ones
                        Assert.Equal(x.HalfScaled![i], pairs[(i & ~15) + (i & 1) * 8 + (i & 15) / 2]);
                    x.Invalidate();
                    Assert.Null(x.HalfScaled); // values changed: made again on the next matmul
                    Assert.Null(x.HalfPairs);
                }
    }

    /// <summary>F32 decode through <see cref="WeightMatrix.MatMul"/> (the kernel's row-range walk: four-row groups by
    /// pointer, then single rows) equals, row by row, <see cref="Kernels.Dot"/> at the scalar setting, at every width:
    /// rows of 128 and 512 values (Pythia's classifier rows) and others below and above the four-row limit, with and
    /// without a tail past 16; 50 rows (many groups, so the walk and its prefetch cross several of them) and 11 (a
    /// multiple of no pass); ranges that start and end off the four-row grid, a range of one row and an empty one, with
    /// the outputs outside the range left alone; weights and activations that are subnormal, ±0, huge, ±inf or NaN; the
    /// weights both on 64-byte lines and 32 bytes off them (the walk picks its pass by alignment).</summary>
    [Fact]
    public void F32DecodeOfARowRangeEqualsDotRowByRowAtEveryWidth()
    {
        var rng = new Rng(88);
        float[] special = [0f, -0f, float.Epsilon, -BitConverter.Int32BitsToSingle(0x007FFFFF), 3e38f, -3e38f, 1e-30f];
        const float Untouched = 12345f;
        foreach (int n in new[] { 16, 17, 128, 288, 300, 512, 768 })
            foreach (int rows in new[] { 11, 50 })
            {
                var w = new float[rows * n];
                // Rows with ±3e38 overflow to ±inf and mostly sum to NaN, which any NaN matches: odd rows hold ±1e30 instead, so
                // their dots stay finite and a row's result in another row's place shows.
                for (int i = 0; i < w.Length; i++)
                {
                    float v = i % 11 == 4 ? special[i % special.Length] : (rng.NextFloat() - 0.5f) * 2;
                    w[i] = (i / n) % 2 == 1 && System.MathF.Abs(v) == 3e38f ? System.MathF.CopySign(1e30f, v) : v;
                }
                if (rows == 50) { w[7 * n + 3] = float.PositiveInfinity; w[9 * n] = float.NaN; w[10 * n + n - 1] = float.NegativeInfinity; }
                var data = new byte[w.Length * 4];
                Buffer.BlockCopy(w, 0, data, 0, data.Length);
                byte[] gguf = new MicroLm.Gguf.GgufWriter().Add("general.architecture", "llama").AddTensor("w", GgmlType.F32, [n, rows], data).ToArray();
                foreach (int misalignment in new[] { 0, 32 })
                foreach (int kind in new[] { 0, 1, 2 })
                {
                    var file = MicroLm.Gguf.GgufFile.FromMemory(PlaceTensorData(gguf, misalignment));
                    var matrix = new WeightMatrix(file, file.Tensors[0]);
                    Assert.Equal(misalignment, (int)(AddressOf(file.GetTensorData(file.Tensors[0])) & 63));
                    var x = new Activation(n);
                    for (int i = 0; i < n; i++)
                        x.Values[i] = kind switch
                        {
                            0 => (rng.NextFloat() - 0.5f) * 4,
                            1 => EdgeActivations[i % EdgeActivations.Length],
                            _ => (rng.NextFloat() - 0.5f) * 1e-38f,
                        };
                    if (kind == 2) { x.Values[n - 1] = float.NaN; x.Values[0] = 3e38f; }
                    var reference = new int[rows];
                    int saved = Kernels.VectorBits;
                    try
                    {
                        Kernels.VectorBits = 0;
                        for (int r = 0; r < rows; r++) reference[r] = BitConverter.SingleToInt32Bits(Kernels.Dot(w.AsSpan(r * n, n), x.Values));
                        foreach (int bits in new[] { 0, 128, 256, 512 })
                        {
                            if (bits > saved) continue;
                            Kernels.VectorBits = bits;
                            x.Invalidate();
                            WeightMatrix.PrepareOne(matrix, [x]);
                            foreach (var (start, end) in new[] { (0, rows), (1, rows), (3, rows - 2), (2, 3), (5, 5), (4, 8) })
                            {
                                var output = new float[rows];
                                Array.Fill(output, Untouched);
                                matrix.MatMul([x], 1, output, start, end);
                                for (int r = 0; r < rows; r++)
                                {
                                    int expected = r >= start && r < end ? reference[r] : BitConverter.SingleToInt32Bits(Untouched);
                                    // A NaN matches any NaN (its sign follows the order of an add's operands; docs/determinism.md, "NaN").
                                    if (float.IsNaN(BitConverter.Int32BitsToSingle(expected)) && float.IsNaN(output[r])) continue;
                                    Assert.True(expected == BitConverter.SingleToInt32Bits(output[r]),
                                        $"n {n}, {rows} rows, weights {misalignment} bytes off a line, activation kind {kind}, width {bits}, rows [{start}, {end}): row {r} is {output[r]:R}, expected {BitConverter.Int32BitsToSingle(expected):R}");
                                }
                            }
                        }
                    }
                    finally { Kernels.VectorBits = saved; }
                }
            }
    }

    /// <summary>A copy of a GGUF file in pinned memory, placed so that its (first) tensor's data starts
    /// <paramref name="misalignment"/> bytes past a 64-byte line.</summary>
    private static unsafe ReadOnlyMemory<byte> PlaceTensorData(byte[] gguf, int misalignment)
    {
        long dataStart = MicroLm.Gguf.GgufFile.FromMemory(gguf) is var f ? f.DataOffset + f.Tensors[0].Offset : 0;
        var buffer = GC.AllocateUninitializedArray<byte>(gguf.Length + 64, pinned: true);
        long at;
        fixed (byte* p = buffer) at = (long)p;
        int shift = (int)(((misalignment - at - dataStart) % 64 + 64) % 64);
        gguf.CopyTo(buffer, shift);
        return buffer.AsMemory(shift, gguf.Length);
    }

    private static unsafe long AddressOf(ReadOnlyMemory<byte> pinned)
    {
        fixed (byte* p = pinned.Span) return (long)p;
    }

    /// <summary><see cref="Kernels.AllFinite"/> (the logits and hidden-state check) at every width equals float.IsFinite over
    /// every value: one NaN (quiet, signalling, negative), ±inf, or a finite value next to them (the largest float, −0,
    /// subnormals) at every position of lengths around the vector steps, so a skipped tail or a lane left unchecked fails.</summary>
    [Fact]
    public void AllFiniteFindsEveryNonFiniteValueAtEveryWidth()
    {
        float[] bad = [float.NaN, -float.NaN, BitConverter.Int32BitsToSingle(0x7F800001), BitConverter.Int32BitsToSingle(unchecked((int)0xFFBFFFFF)), float.PositiveInfinity, float.NegativeInfinity];
        float[] good = [float.MaxValue, -float.MaxValue, -0f, float.Epsilon, BitConverter.Int32BitsToSingle(0x007FFFFF), 1f];
        int saved = Kernels.VectorBits;
        try
        {
            foreach (int bits in new[] { 0, 128, 256, 512 })
            {
                if (bits > saved) continue;
                Kernels.VectorBits = bits;
                foreach (int n in new[] { 0, 1, 3, 4, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 100 })
                {
                    var x = new float[n];
                    for (int i = 0; i < n; i++) x[i] = good[i % good.Length];
                    Assert.True(Kernels.AllFinite(x), $"width {bits}, n {n}: all finite");
                    for (int at = 0; at < n; at++)
                        foreach (float b in bad)
                        {
                            float keep = x[at];
                            x[at] = b;
                            Assert.False(Kernels.AllFinite(x), $"width {bits}, n {n}: 0x{BitConverter.SingleToInt32Bits(b):X8} at {at}");
                            x[at] = keep;
                        }
                }
            }
        }
        finally { Kernels.VectorBits = saved; }
    }

    /// <summary>F16 decode through <see cref="WeightMatrix.MatMul"/> (four-row passes on every row length at 256 bits, on short
    /// rows at 512 with two-row passes on long ones, single rows, Vector128 and scalar; ranges on and off the pass grid, the rows outside them left alone)
    /// with the activation prepared as decode prepares it equals, row by row, the F32 dot of the IEEE-converted row at the
    /// scalar setting: every width, row lengths with and without a tail past 16, rows above and below the four-row limit,
    /// 11 rows (a multiple of no pass), halves that are subnormal, ±0 and ±65504, a row of −0 times positive activations
    /// (+0: lanes start at +0), and activations at the scaled form's edges or beyond them (|x| ≥ 2^16, ±inf, NaN: the kernel
    /// multiplies as before there, without the pair form). At 256 and 512 bits the pair loops (F16Kernel.Pairs) run, so a
    /// product with the wrong activation, a lane in the wrong place before the fold, or a fold in another order shows.</summary>
    [Fact]
    public void F16DecodeEqualsTheDotOfTheConvertedRowAtEveryWidth()
    {
        const int rows = 11;
        var rng = new Rng(77);
        ushort[] special = [0x0001, 0x8001, 0x03FF, 0x83FF, 0x0400, 0x0000, 0x8000, 0x7BFF, 0xFBFF, 0x3C00];
        foreach (int n in new[] { 1, 15, 16, 17, 31, 32, 48, 288, 300, 768, 1024, 1040, 2048 })
        {
            var halves = new ushort[rows * n];
            for (int i = 0; i < halves.Length; i++)
            {
                ushort h;
                do h = (ushort)rng.NextUInt64(); while ((h & 0x7C00) == 0x7C00); // finite halves over the whole range
                halves[i] = i / n == 2 ? (ushort)0x8000 : i % 7 == 3 ? special[i % special.Length] : h; // row 2: all −0
            }
            var data = new byte[halves.Length * 2];
            Buffer.BlockCopy(halves, 0, data, 0, data.Length);
            var file = MicroLm.Gguf.GgufFile.FromMemory(new MicroLm.Gguf.GgufWriter().Add("general.architecture", "llama").AddTensor("w", GgmlType.F16, [n, rows], data).ToArray());
            var matrix = new WeightMatrix(file, file.Tensors[0]);
            var converted = new float[n];
            foreach (int kind in new[] { 0, 1, 2, 3, 4, 5, 6 })
            {
                var x = new Activation(n);
                for (int i = 0; i < n; i++)
                    x.Values[i] = kind switch
                    {
                        0 => (rng.NextFloat() - 0.5f) * 4,
                        1 => EdgeActivations[i % EdgeActivations.Length],
                        2 => (rng.NextFloat() - 0.5f) * 1e-38f, // subnormal and tiny: products underflow
                        6 => rng.NextFloat() + 0.25f, // positive: row 2's products are all −0, its lanes start at +0, so its dot is +0
                        _ => (rng.NextFloat() - 0.5f) * 2,
                    };
                if (kind == 3) x.Values[n - 1] = 65536f;               // too large: no scaled form
                if (kind == 4) x.Values[n / 2] = float.NegativeInfinity;
                if (kind == 5) x.Values[0] = float.NaN;
                var reference = new int[rows];
                int saved = Kernels.VectorBits;
                try
                {
                    Kernels.VectorBits = 0;
                    for (int r = 0; r < rows; r++)
                    {
                        for (int i = 0; i < n; i++) converted[i] = (float)BitConverter.UInt16BitsToHalf(halves[r * n + i]);
                        reference[r] = BitConverter.SingleToInt32Bits(Kernels.Dot(converted, x.Values));
                    }
                    foreach (int bits in new[] { 0, 128, 256, 512 })
                    {
                        if (bits > saved) continue;
                        Kernels.VectorBits = bits;
                        x.Invalidate();
                        WeightMatrix.Prepare(matrix, [x], 0, 1); // a batch's token prepared alone (prefill): no decode form
                        Assert.Null(x.HalfScaled);
                        WeightMatrix.PrepareOne(matrix, [x]);
                        Assert.Equal(kind is < 3 or 6, x.HalfScaled is not null);
                        Assert.Equal(kind is < 3 or 6 && bits == 256, x.HalfPairs is not null);
                        foreach (var (start, end) in new[] { (0, rows), (1, rows), (3, 10), (2, 3), (4, 8) })
                        {
                            var output = new float[rows];
                            Array.Fill(output, 12345f);
                            matrix.MatMul([x], 1, output, start, end);
                            for (int r = 0; r < rows; r++)
                                if (r < start || r >= end) Assert.True(output[r] == 12345f, $"n {n}, width {bits}, rows [{start}, {end}): row {r} was written");
                            for (int r = start; r < end; r++)
                                Assert.True(reference[r] == BitConverter.SingleToInt32Bits(output[r]),
                                    $"n {n}, activation kind {kind}, width {bits}, rows [{start}, {end}): row {r} is {output[r]:R}, expected {BitConverter.Int32BitsToSingle(reference[r]):R}");
                        }
                    }
                }
                finally { Kernels.VectorBits = saved; }
            }
        }
    }

    /// <summary>Q4_0 and Q8_0 decode through <see cref="WeightMatrix.MatMul"/> (four-row passes and single rows) equals,
    /// row by row, the contract written out here (IntegerDot: exact group sums of four, lane j += (float)sum·(d_w·d_x) in
    /// block order, lanes folded j+4, then (0 + 2) + (1 + 3)) at every width, bit for bit (a NaN matches any NaN): 1 to 64 blocks per row, 11 and 13 rows
    /// (multiples of no pass), row ranges off the four-row grid, quants at their extremes, block scales that are NaN,
    /// ±inf, subnormal, ±0 and the largest half, and activations that are tiny, huge, or hold ±inf or NaN.</summary>
    [Theory]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.Q8_0)]
    public void QuantizedDecodeFollowsTheContractAtEveryWidth(GgmlType type)
    {
        var info = TensorTypes.Get(type);
        var rng = new Rng(41);
        ushort[] special = [0x7E00, 0x7C00, 0xFC00, 0x0001, 0x8001, 0x03FF, 0x0000, 0x8000, 0x7BFF, 0xFBFF];
        foreach (int blocks in new[] { 1, 2, 3, 9, 24, 64 })
            foreach (int rows in new[] { 11, 13 })
            {
                int n = 32 * blocks, rowBytes = (int)info.RowBytes(n);
                var data = new byte[rows * rowBytes];
                for (int r = 0; r < rows; r++)
                    for (int b = 0; b < blocks; b++)
                    {
                        int at = r * rowBytes + b * info.BytesPerBlock;
                        ushort h = (r + b) % 5 == 2 ? special[(r * blocks + b) % special.Length]
                            : (ushort)((0x2000 + (int)(rng.NextUInt64() % 0x1800)) | (rng.NextUInt64() % 2 == 0 ? 0 : 0x8000));
                        data[at] = (byte)h;
                        data[at + 1] = (byte)(h >> 8);
                        for (int i = 2; i < info.BytesPerBlock; i++)
                            data[at + i] = (rng.NextUInt64() % 6) switch { 0 => 0x7F, 1 => 0x81, 2 => 0x80, 3 => 0xF0, 4 => 0x0F, _ => (byte)rng.NextUInt64() };
                    }
                var file = MicroLm.Gguf.GgufFile.FromMemory(new MicroLm.Gguf.GgufWriter().Add("general.architecture", "llama").AddTensor("w", type, [n, rows], data).ToArray());
                var matrix = new WeightMatrix(file, file.Tensors[0]);
                foreach (int kind in new[] { 0, 1, 2, 3 })
                {
                    var x = new Activation(n);
                    float magnitude = kind switch { 1 => 1e-40f, 2 => 3e38f, _ => 3 };
                    for (int i = 0; i < n; i++) x.Values[i] = (rng.NextFloat() - 0.5f) * magnitude;
                    x.Values[(5 * blocks) % n] = magnitude; // a quant at +127
                    if (kind == 3) { x.Values[n - 1] = float.PositiveInfinity; x.Values[0] = float.NaN; }
                    int saved = Kernels.VectorBits;
                    try
                    {
                        foreach (int bits in new[] { 0, 128, 256, 512 })
                        {
                            if (bits > saved) continue;
                            Kernels.VectorBits = bits;
                            x.Invalidate();
                            WeightMatrix.PrepareOne(matrix, [x]);
                            foreach (var (start, end) in new[] { (0, rows), (1, rows), (2, rows - 3) })
                            {
                                var output = new float[rows];
                                matrix.MatMul([x], 1, output, start, end);
                                for (int r = start; r < end; r++)
                                {
                                    float expected = ContractDot(type, data.AsSpan(r * rowBytes, rowBytes), x);
                                    // A NaN matches any NaN: its sign depends on the order of an add's operands, which the JIT may
                                    // swap, and on the CPU; a NaN in the logits stops generation (docs/determinism.md, "NaN").
                                    if (float.IsNaN(expected) && float.IsNaN(output[r])) continue;
                                    Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(output[r]),
                                        $"{type}, {blocks} blocks, {rows} rows, activation kind {kind}, width {bits}, rows [{start}, {end}): row {r} is {output[r]:R}, the contract gives {expected:R}");
                                }
                            }
                        }
                    }
                    finally { Kernels.VectorBits = saved; }
                }
            }
    }

    /// <summary>The Q8_0/Q4_0 dot as IntegerDot's contract states it, in scalar code.</summary>
    private static float ContractDot(GgmlType type, ReadOnlySpan<byte> row, Activation x)
    {
        int blockBytes = type == GgmlType.Q4_0 ? 18 : 34;
        var lanes = new float[8];
        for (int b = 0; b < x.Length / 32; b++)
        {
            var block = row.Slice(b * blockBytes, blockBytes);
            float dw = (float)BitConverter.UInt16BitsToHalf((ushort)(block[0] | block[1] << 8));
            float scale = dw * x.Q8Scales[b];
            for (int j = 0; j < 8; j++)
            {
                int sum = 0;
                for (int i = 4 * j; i < 4 * j + 4; i++)
                {
                    int w = type == GgmlType.Q4_0 ? (i < 16 ? block[2 + i] & 0xF : block[2 + i - 16] >> 4) - 8 : (sbyte)block[2 + i];
                    sum += w * x.Q8[b * 32 + i];
                }
                lanes[j] += sum * scale;
            }
        }
        for (int j = 0; j < 4; j++) lanes[j] += lanes[j + 4];
        return (lanes[0] + lanes[2]) + (lanes[1] + lanes[3]);
    }
}
