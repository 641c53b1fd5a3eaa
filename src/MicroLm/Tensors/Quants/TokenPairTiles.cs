using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MicroLm.Tensors.Quants;

/// <summary>Prefill at AVX-512 with two tokens per 512-bit vector: a (row, token pair) sum holds token 2k's eight lanes
/// in the even dwords and token 2k+1's in the odd ones, so each vector operation does two pairs' work of the 256-bit
/// tiles (half the instructions per pair; the 256-bit tiles ran well below their pipes' bound). The activations of a
/// matmul call are laid out once per call for this: each 4-value group of token 2k followed by the same group of token
/// 2k+1 (quants and 8·Σx group sums), and the block scales transposed (token-minor). Per-call scratch, one set per thread.</summary>
internal static class TokenPairs
{
    [ThreadStatic] private static byte[]? t_quants;
    [ThreadStatic] private static int[]? t_sums;
    [ThreadStatic] private static float[]? t_scales;
    [ThreadStatic] private static byte[]? t_minus;

    /// <summary>Whether the pair tiles run: 512-bit vectors with AVX-512 BW at the 512-bit setting of the width switch.</summary>
    internal static bool Enabled => IntegerDot.UseEvex && Avx512BW.IsSupported && Vector512.IsHardwareAccelerated;

    /// <summary>Lays out tokens [0, pairs·2) of <paramref name="xs"/> (pairs a multiple of 4) in the order the tiles read
    /// them, each tile's four pairs side by side per block: pair k's quants at (((k / 4)·blocks + block)·4 + k % 4)·64
    /// bytes, its group sums at the same index·16 ints, scales at block·tokens + token (tokens = pairs·2); with
    /// <paramref name="minus"/>, −quants laid out as the quants (Q8_0's sign step; quants are never −128, so exact).
    /// A tile then reads one stream of quants and one of sums instead of four of each: `--prefill-kernels --shapes
    /// 110M,15M` (Zen 5, three alternations) 110M Q4_0 98–102 → 103–106 GMAC/s, Q8_0 86–87 → 88–93.</summary>
    internal static (byte[] Quants, int[] Sums, float[] Scales, byte[] Minus) Prepare(Activation[] xs, int pairs, int blocks, bool groupSums, bool minus = false)
    {
        int tokens = 2 * pairs;
        var quants = t_quants is { } q && q.Length >= tokens * blocks * 32 ? q : t_quants = new byte[tokens * blocks * 32];
        var negated = !minus ? Array.Empty<byte>() : t_minus is { } mq && mq.Length >= tokens * blocks * 32 ? mq : t_minus = new byte[tokens * blocks * 32];
        ref byte mo = ref MemoryMarshal.GetArrayDataReference(negated);
        var sums = !groupSums ? Array.Empty<int>() : t_sums is { } s && s.Length >= tokens * blocks * 8 ? s : t_sums = new int[tokens * blocks * 8];
        var scales = t_scales is { } d && d.Length >= tokens * blocks ? d : t_scales = new float[tokens * blocks];
        var order = Vector512.Create(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
        ref byte qo = ref MemoryMarshal.GetArrayDataReference(quants);
        ref int so = ref MemoryMarshal.GetArrayDataReference(sums);
        ref float fo = ref MemoryMarshal.GetArrayDataReference(scales);
        for (int k = 0; k < pairs; k++)
        {
            var (even, odd) = (xs[2 * k], xs[2 * k + 1]);
            ref byte qe = ref Unsafe.As<sbyte, byte>(ref MemoryMarshal.GetReference(even.Q8));
            ref byte qd = ref Unsafe.As<sbyte, byte>(ref MemoryMarshal.GetReference(odd.Q8));
            for (int b = 0; b < blocks; b++)
            {
                nuint at = (nuint)((((k / 4) * blocks + b) * 4 + k % 4) * 64);
                var both = Vector512.Create(Vector256.LoadUnsafe(ref qe, (nuint)(b * 32)), Vector256.LoadUnsafe(ref qd, (nuint)(b * 32))).AsInt32();
                var interleaved = Avx512F.PermuteVar16x32(both, order).AsSByte();
                interleaved.AsByte().StoreUnsafe(ref qo, at);
                if (minus) (Vector512<sbyte>.Zero - interleaved).AsByte().StoreUnsafe(ref mo, at);
                if (groupSums)
                {
                    var g = Vector512.Create(Vector256.LoadUnsafe(ref MemoryMarshal.GetArrayDataReference(even.Q8GroupSums8), (nuint)(b * 8)),
                        Vector256.LoadUnsafe(ref MemoryMarshal.GetArrayDataReference(odd.Q8GroupSums8), (nuint)(b * 8)));
                    Avx512F.PermuteVar16x32(g, order).StoreUnsafe(ref so, at / 4);
                }
                Unsafe.Add(ref fo, b * tokens + 2 * k) = even.Q8Scales[b];
                Unsafe.Add(ref fo, b * tokens + 2 * k + 1) = odd.Q8Scales[b];
            }
        }
        return (quants, sums, scales, negated);
    }

    /// <summary>Folds four rows' sums of one token pair in the contract's order (<see cref="IntegerDot.Fold"/>: j += j+4,
    /// then (0 + 2) + (1 + 3), each token's lanes apart) and writes token 2k's results to output[at + row], 2k+1's to
    /// output[at + stride + row]. The four folds run side by side in 128-bit lanes, each add pairing the lanes one fold
    /// would (a third fewer instructions than four one-at-a-time folds; `--prefill-kernels --shapes 110M,15M`, Zen 5,
    /// two alternations: Q4_0 96–99 → 102–103 GMAC/s, Q8_0 84–87 → 85–87).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Store4(Vector512<float> r0, Vector512<float> r1, Vector512<float> r2, Vector512<float> r3, ref float output, int at, int stride)
    {
        // j += j+4: 128-bit lanes [s0 low, s0 high, s1 low, s1 high] and the same for rows 2 and 3.
        var s01 = Avx512F.Shuffle4x128(r0, r1, 0x44) + Avx512F.Shuffle4x128(r0, r1, 0xEE);
        var s23 = Avx512F.Shuffle4x128(r2, r3, 0x44) + Avx512F.Shuffle4x128(r2, r3, 0xEE);
        // (0 + 2), (1 + 3): 128-bit lane k holds row k's s0 + s2 (even token, odd token), then s1 + s3 (even, odd).
        var h = Avx512F.Shuffle4x128(s01, s23, 0x88) + Avx512F.Shuffle4x128(s01, s23, 0xDD);
        // (0 + 2) + (1 + 3), in floats 4k (even token) and 4k + 1 (odd).
        var r = h + Avx512F.Permute4x32(h, 0x4E);
        var tokens = Avx512F.PermuteVar16x32(r, Vector512.Create(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0)).GetLower();
        tokens.GetLower().StoreUnsafe(ref output, (nuint)at);
        tokens.GetUpper().StoreUnsafe(ref output, (nuint)(at + stride));
    }
}

internal sealed partial class Q4_0Kernel
{
    [ThreadStatic] private static byte[]? t_nibbles;
    [ThreadStatic] private static float[]? t_rowScales;

    /// <summary>Prefill over rows [rowStart, rowEnd) at AVX-512 (<see cref="TokenPairs"/>): per four-row group the nibbles
    /// are unpacked once (unsigned, each 4-value group twice, for both tokens of a pair) and the scales converted once,
    /// then <see cref="TilePairs"/> takes eight tokens at a time; the tokens past the last eight take
    /// <see cref="Dot4Rows"/>. Same integers and float steps per (row, token) as Dot, so Dot's bits. At AVX2 the whole range goes to
    /// <see cref="UnsignedTiles.PrefillRows{TOffset}"/>.</summary>
    public override int PrefillRows(ReadOnlySpan<byte> data, int rowBytes, Activation[] xs, int count, Span<float> output, int stride, int rowStart, int rowEnd)
    {
        int blocks = xs[0].Length / 32;
        if (rowEnd - rowStart < 4) return rowStart;
        if (!TokenPairs.Enabled)
            return UnsignedTiles.Usable(count, blocks) ? UnsignedTiles.PrefillRows<UnsignedTiles.NibbleOffset>(this, data, rowBytes, xs, count, output, stride, rowStart, rowEnd) : rowStart;
        if (count < 8) return rowStart;
        RowKernel.CheckBatchRange(count, output, stride, rowStart, rowEnd);
        int tiled = count & ~7;
        var (quants, sums, scales, _) = TokenPairs.Prepare(xs, tiled / 2, blocks, groupSums: true);
        var nibbles = t_nibbles is { } n && n.Length >= blocks * 256 ? n : t_nibbles = new byte[blocks * 256];
        var rowScales = t_rowScales is { } d && d.Length >= blocks * 4 ? d : t_rowScales = new float[blocks * 4];
        Span<float> products = stackalloc float[32];
        for (; rowStart + 4 <= rowEnd; rowStart += 4)
        {
            var rows = data.Slice(rowStart * rowBytes, 4 * rowBytes);
            UnpackRows4Doubled(rows, rowBytes, blocks, nibbles, rowScales);
            PrefetchNextGroup(data, rowBytes, rowStart, rowEnd);
            for (int t = 0; t < tiled; t += 8)
                TilePairs(ref MemoryMarshal.GetArrayDataReference(nibbles), ref MemoryMarshal.GetArrayDataReference(rowScales), quants, sums, scales,
                    t, tiled, blocks, ref MemoryMarshal.GetReference(products), output, stride, rowStart);
            for (int t = tiled; t < count; t++) Dot4Rows(rows, rowBytes, xs[t], output.Slice(t * stride + rowStart, 4));
        }
        return rowStart;
    }

    /// <summary>Four rows' nibbles, unsigned, block-major (4 × 64 bytes per block): each 4-value group of a row twice
    /// (dwords j, j: the even and odd token of a pair), and their scales d_w (4 floats per block).</summary>
    private static void UnpackRows4Doubled(ReadOnlySpan<byte> rows, int rowBytes, int blocks, byte[] nibbles, float[] scales)
    {
        // The 16 packed bytes as dwords P0..P3: values 4j..4j+3 are the low nibbles of Pj (j < 4) or the high ones of P(j−4).
        var twice = Vector512.Create(0u, 0, 1, 1, 2, 2, 3, 3, 0, 0, 1, 1, 2, 2, 3, 3);
        var shifts = Vector512.Create(0u, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4);
        ref byte target = ref MemoryMarshal.GetArrayDataReference(nibbles);
        ref float dw = ref MemoryMarshal.GetArrayDataReference(scales);
        ref byte source = ref MemoryMarshal.GetReference(rows);
        for (int r = 0; r < 4; r++)
        {
            ref byte row = ref Unsafe.Add(ref source, r * rowBytes);
            for (int bl = 0; bl < blocks; bl++)
            {
                ref byte k = ref Unsafe.Add(ref row, bl * BlockBytes);
                var packed = Vector128.LoadUnsafe(ref Unsafe.Add(ref k, 2)).AsUInt32().ToVector256Unsafe().ToVector512Unsafe();
                var doubled = Avx512F.ShiftRightLogicalVariable(Avx512F.PermuteVar16x32(packed, twice), shifts).AsByte() & Vector512.Create((byte)0x0F);
                doubled.StoreUnsafe(ref target, (nuint)((bl * 4 + r) * 64));
                Unsafe.Add(ref dw, bl * 4 + r) = Block.Half(ref k);
            }
        }
    }

    /// <summary>Four rows × tokens [t, t + 8) as 16 (row, token pair) sums of 512 bits. Per block: the 32 scale products
    /// d_w·d_x (four 8-wide multiplies, read back as 64-bit broadcasts: each pair's two), then per sum the unsigned
    /// nibble pair sums minus 8·Σx (<see cref="IntegerDot.GroupsNibbles"/>'s integers), convert, multiply, add.</summary>
    private static void TilePairs(ref byte nibbles, ref float rowScales, byte[] quants, int[] sums, float[] scales, int t, int tokens, int blocks,
        ref float p, Span<float> output, int stride, int rowIndex)
    {
        ref byte q = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(quants), t / 2 * blocks * 64);
        ref int g = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(sums), t / 2 * blocks * 16);
        ref float dx = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(scales), t);
        const nuint pairBytes = 64, pairInts = 16; // from one pair's quants and group sums to the next pair's, same block (Prepare)
        var ones = Vector512<short>.One;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, d0 = default, d1 = default, d2 = default, d3 = default;
        for (int bl = 0; bl < blocks; bl++)
        {
            // s = d_w · d_x, p[8·row + token]: the products Dot forms.
            var dx8 = Vector256.LoadUnsafe(ref dx, (nuint)(bl * tokens));
            ref float dw = ref Unsafe.Add(ref rowScales, bl * 4);
            (Vector256.Create(dw) * dx8).StoreUnsafe(ref p);
            (Vector256.Create(Unsafe.Add(ref dw, 1)) * dx8).StoreUnsafe(ref p, 8);
            (Vector256.Create(Unsafe.Add(ref dw, 2)) * dx8).StoreUnsafe(ref p, 16);
            (Vector256.Create(Unsafe.Add(ref dw, 3)) * dx8).StoreUnsafe(ref p, 24);
            ref byte m = ref Unsafe.Add(ref nibbles, bl * 256);
            var u0 = Vector512.LoadUnsafe(ref m); var u1 = Vector512.LoadUnsafe(ref m, 64);
            var u2 = Vector512.LoadUnsafe(ref m, 128); var u3 = Vector512.LoadUnsafe(ref m, 192);
            nuint qo = (nuint)(bl * 256), go = (nuint)(bl * 64);
            Vector512<sbyte> x; Vector512<int> s;
            x = Vector512.LoadUnsafe(ref q, qo).AsSByte(); s = Vector512.LoadUnsafe(ref g, go);
            a0 += Vector512.ConvertToSingle(Groups(u0, x, s, ones)) * Pair(ref p, 0);
            a1 += Vector512.ConvertToSingle(Groups(u1, x, s, ones)) * Pair(ref p, 8);
            a2 += Vector512.ConvertToSingle(Groups(u2, x, s, ones)) * Pair(ref p, 16);
            a3 += Vector512.ConvertToSingle(Groups(u3, x, s, ones)) * Pair(ref p, 24);
            x = Vector512.LoadUnsafe(ref q, qo + pairBytes).AsSByte(); s = Vector512.LoadUnsafe(ref g, go + pairInts);
            b0 += Vector512.ConvertToSingle(Groups(u0, x, s, ones)) * Pair(ref p, 2);
            b1 += Vector512.ConvertToSingle(Groups(u1, x, s, ones)) * Pair(ref p, 10);
            b2 += Vector512.ConvertToSingle(Groups(u2, x, s, ones)) * Pair(ref p, 18);
            b3 += Vector512.ConvertToSingle(Groups(u3, x, s, ones)) * Pair(ref p, 26);
            x = Vector512.LoadUnsafe(ref q, qo + 2 * pairBytes).AsSByte(); s = Vector512.LoadUnsafe(ref g, go + 2 * pairInts);
            c0 += Vector512.ConvertToSingle(Groups(u0, x, s, ones)) * Pair(ref p, 4);
            c1 += Vector512.ConvertToSingle(Groups(u1, x, s, ones)) * Pair(ref p, 12);
            c2 += Vector512.ConvertToSingle(Groups(u2, x, s, ones)) * Pair(ref p, 20);
            c3 += Vector512.ConvertToSingle(Groups(u3, x, s, ones)) * Pair(ref p, 28);
            x = Vector512.LoadUnsafe(ref q, qo + 3 * pairBytes).AsSByte(); s = Vector512.LoadUnsafe(ref g, go + 3 * pairInts);
            d0 += Vector512.ConvertToSingle(Groups(u0, x, s, ones)) * Pair(ref p, 6);
            d1 += Vector512.ConvertToSingle(Groups(u1, x, s, ones)) * Pair(ref p, 14);
            d2 += Vector512.ConvertToSingle(Groups(u2, x, s, ones)) * Pair(ref p, 22);
            d3 += Vector512.ConvertToSingle(Groups(u3, x, s, ones)) * Pair(ref p, 30);
        }
        ref float o = ref MemoryMarshal.GetReference(output);
        int at = t * stride + rowIndex, step = 2 * stride;
        TokenPairs.Store4(a0, a1, a2, a3, ref o, at, stride);
        TokenPairs.Store4(b0, b1, b2, b3, ref o, at + step, stride);
        TokenPairs.Store4(c0, c1, c2, c3, ref o, at + 2 * step, stride);
        TokenPairs.Store4(d0, d1, d2, d3, ref o, at + 3 * step, stride);
    }

    /// <summary>Σ(n − 8)·x per group for both tokens: u8·s8 pair sums, pairs of pairs, minus 8·Σx (exact integers).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Groups(Vector512<byte> nibbles, Vector512<sbyte> x, Vector512<int> groupSums8, Vector512<short> ones) =>
        Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(nibbles, x), ones) - groupSums8;

    /// <summary>The scale products of one row and a token pair (p[at], p[at + 1]) in the even and odd lanes: a 64-bit broadcast.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Pair(ref float p, int at) => Vector512.Create(Unsafe.As<float, double>(ref Unsafe.Add(ref p, at))).AsSingle();
}

internal sealed partial class Q8_0Kernel
{
    [ThreadStatic] private static byte[]? t_magnitudes, t_weights;
    [ThreadStatic] private static float[]? t_rowScales;

    /// <summary>Prefill over rows [rowStart, rowEnd) at AVX-512 (<see cref="TokenPairs"/>): per four-row group |w| and w are
    /// laid out once (each 4-value group twice, for both tokens of a pair) and the scales converted once, then
    /// <see cref="TilePairs"/> takes eight tokens at a time; the tokens past the last eight take <see cref="Dot4Rows"/>.
    /// Same integers and float steps per (row, token) as Dot, so Dot's bits. At AVX2 with AVX-VNNI the whole range goes to
    /// <see cref="UnsignedTiles.PrefillRows{TOffset}"/> (w + 128).</summary>
    public override int PrefillRows(ReadOnlySpan<byte> data, int rowBytes, Activation[] xs, int count, Span<float> output, int stride, int rowStart, int rowEnd)
    {
        int blocks = xs[0].Length / 32;
        if (rowEnd - rowStart < 4) return rowStart;
        if (!TokenPairs.Enabled)
            return AvxVnni.IsSupported && UnsignedTiles.Usable(count, blocks) ? UnsignedTiles.PrefillRows<UnsignedTiles.Q8Offset>(this, data, rowBytes, xs, count, output, stride, rowStart, rowEnd) : rowStart;
        if (count < 8) return rowStart;
        RowKernel.CheckBatchRange(count, output, stride, rowStart, rowEnd);
        int tiled = count & ~7;
        var (quants, _, scales, minus) = TokenPairs.Prepare(xs, tiled / 2, blocks, groupSums: false, minus: true);
        var magnitudes = t_magnitudes is { } u && u.Length >= blocks * 256 ? u : t_magnitudes = new byte[blocks * 256];
        var weights = t_weights is { } w && w.Length >= blocks * 256 ? w : t_weights = new byte[blocks * 256];
        var rowScales = t_rowScales is { } d && d.Length >= blocks * 4 ? d : t_rowScales = new float[blocks * 4];
        Span<float> products = stackalloc float[32];
        for (; rowStart + 4 <= rowEnd; rowStart += 4)
        {
            var rows = data.Slice(rowStart * rowBytes, 4 * rowBytes);
            LayOutRows4(rows, rowBytes, blocks, magnitudes, weights, rowScales);
            PrefetchNextGroup(data, rowBytes, rowStart, rowEnd);
            for (int t = 0; t < tiled; t += 8)
                TilePairs(ref MemoryMarshal.GetArrayDataReference(magnitudes), ref MemoryMarshal.GetArrayDataReference(weights), ref MemoryMarshal.GetArrayDataReference(rowScales),
                    quants, minus, scales, t, tiled, blocks, ref MemoryMarshal.GetReference(products), output, stride, rowStart);
            for (int t = tiled; t < count; t++) Dot4Rows(rows, rowBytes, xs[t], output.Slice(t * stride + rowStart, 4));
        }
        return rowStart;
    }

    /// <summary>Four rows' |w| and w, block-major (4 × 64 bytes per block each), every 4-value group twice (the even and
    /// odd token of a pair), and their scales d_w (4 floats per block).</summary>
    private static void LayOutRows4(ReadOnlySpan<byte> rows, int rowBytes, int blocks, byte[] magnitudes, byte[] weights, float[] scales)
    {
        var twice = Vector512.Create(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        ref byte mt = ref MemoryMarshal.GetArrayDataReference(magnitudes);
        ref byte wt = ref MemoryMarshal.GetArrayDataReference(weights);
        ref float dw = ref MemoryMarshal.GetArrayDataReference(scales);
        ref byte source = ref MemoryMarshal.GetReference(rows);
        for (int r = 0; r < 4; r++)
        {
            ref byte row = ref Unsafe.Add(ref source, r * rowBytes);
            for (int bl = 0; bl < blocks; bl++)
            {
                ref byte k = ref Unsafe.Add(ref row, bl * BlockBytes);
                var values = Vector256.LoadUnsafe(ref Unsafe.Add(ref k, 2)).AsInt32();
                var doubled = Avx512F.PermuteVar16x32(values.ToVector512Unsafe(), twice).AsSByte();
                nuint at = (nuint)((bl * 4 + r) * 64);
                doubled.AsByte().StoreUnsafe(ref wt, at);
                Avx512BW.Abs(doubled).StoreUnsafe(ref mt, at);
                Unsafe.Add(ref dw, bl * 4 + r) = Block.Half(ref k);
            }
        }
    }

    /// <summary>Four rows × tokens [t, t + 8) as 16 (row, token pair) sums of 512 bits: per block the 32 scale products
    /// d_w·d_x (four 8-wide multiplies, read back as 64-bit broadcasts), then per sum the sign step (a masked blend of x and
    /// −x under w &lt; 0, as <see cref="IntegerDot.Groups256Evex"/>), |w|·x pair sums, pairs of pairs, convert, multiply, add.</summary>
    private static void TilePairs(ref byte magnitudes, ref byte weights, ref float rowScales, byte[] quants, byte[] minus, float[] scales, int t, int tokens, int blocks,
        ref float p, Span<float> output, int stride, int rowIndex)
    {
        ref byte q = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(quants), t / 2 * blocks * 64);
        ref byte mq = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(minus), t / 2 * blocks * 64);
        ref float dx = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(scales), t);
        const nuint pairBytes = 64; // from one pair's quants to the next pair's, same block (Prepare)
        var ones = Vector512<short>.One;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, d0 = default, d1 = default, d2 = default, d3 = default;
        for (int bl = 0; bl < blocks; bl++)
        {
            // s = d_w · d_x, p[8·row + token]: the products Dot forms.
            var dx8 = Vector256.LoadUnsafe(ref dx, (nuint)(bl * tokens));
            ref float dw = ref Unsafe.Add(ref rowScales, bl * 4);
            (Vector256.Create(dw) * dx8).StoreUnsafe(ref p);
            (Vector256.Create(Unsafe.Add(ref dw, 1)) * dx8).StoreUnsafe(ref p, 8);
            (Vector256.Create(Unsafe.Add(ref dw, 2)) * dx8).StoreUnsafe(ref p, 16);
            (Vector256.Create(Unsafe.Add(ref dw, 3)) * dx8).StoreUnsafe(ref p, 24);
            nuint wo = (nuint)(bl * 256);
            var u0 = Vector512.LoadUnsafe(ref magnitudes, wo); var u1 = Vector512.LoadUnsafe(ref magnitudes, wo + 64);
            var u2 = Vector512.LoadUnsafe(ref magnitudes, wo + 128); var u3 = Vector512.LoadUnsafe(ref magnitudes, wo + 192);
            var n0 = Vector512.LessThan(Vector512.LoadUnsafe(ref weights, wo).AsSByte(), Vector512<sbyte>.Zero);
            var n1 = Vector512.LessThan(Vector512.LoadUnsafe(ref weights, wo + 64).AsSByte(), Vector512<sbyte>.Zero);
            var n2 = Vector512.LessThan(Vector512.LoadUnsafe(ref weights, wo + 128).AsSByte(), Vector512<sbyte>.Zero);
            var n3 = Vector512.LessThan(Vector512.LoadUnsafe(ref weights, wo + 192).AsSByte(), Vector512<sbyte>.Zero);
            nuint qo = (nuint)(bl * 256);
            Vector512<sbyte> x, mx;
            x = Vector512.LoadUnsafe(ref q, qo).AsSByte(); mx = Vector512.LoadUnsafe(ref mq, qo).AsSByte();
            a0 += Vector512.ConvertToSingle(Groups(u0, n0, x, mx, ones)) * Pair(ref p, 0);
            a1 += Vector512.ConvertToSingle(Groups(u1, n1, x, mx, ones)) * Pair(ref p, 8);
            a2 += Vector512.ConvertToSingle(Groups(u2, n2, x, mx, ones)) * Pair(ref p, 16);
            a3 += Vector512.ConvertToSingle(Groups(u3, n3, x, mx, ones)) * Pair(ref p, 24);
            x = Vector512.LoadUnsafe(ref q, qo + pairBytes).AsSByte(); mx = Vector512.LoadUnsafe(ref mq, qo + pairBytes).AsSByte();
            b0 += Vector512.ConvertToSingle(Groups(u0, n0, x, mx, ones)) * Pair(ref p, 2);
            b1 += Vector512.ConvertToSingle(Groups(u1, n1, x, mx, ones)) * Pair(ref p, 10);
            b2 += Vector512.ConvertToSingle(Groups(u2, n2, x, mx, ones)) * Pair(ref p, 18);
            b3 += Vector512.ConvertToSingle(Groups(u3, n3, x, mx, ones)) * Pair(ref p, 26);
            x = Vector512.LoadUnsafe(ref q, qo + 2 * pairBytes).AsSByte(); mx = Vector512.LoadUnsafe(ref mq, qo + 2 * pairBytes).AsSByte();
            c0 += Vector512.ConvertToSingle(Groups(u0, n0, x, mx, ones)) * Pair(ref p, 4);
            c1 += Vector512.ConvertToSingle(Groups(u1, n1, x, mx, ones)) * Pair(ref p, 12);
            c2 += Vector512.ConvertToSingle(Groups(u2, n2, x, mx, ones)) * Pair(ref p, 20);
            c3 += Vector512.ConvertToSingle(Groups(u3, n3, x, mx, ones)) * Pair(ref p, 28);
            x = Vector512.LoadUnsafe(ref q, qo + 3 * pairBytes).AsSByte(); mx = Vector512.LoadUnsafe(ref mq, qo + 3 * pairBytes).AsSByte();
            d0 += Vector512.ConvertToSingle(Groups(u0, n0, x, mx, ones)) * Pair(ref p, 6);
            d1 += Vector512.ConvertToSingle(Groups(u1, n1, x, mx, ones)) * Pair(ref p, 14);
            d2 += Vector512.ConvertToSingle(Groups(u2, n2, x, mx, ones)) * Pair(ref p, 22);
            d3 += Vector512.ConvertToSingle(Groups(u3, n3, x, mx, ones)) * Pair(ref p, 30);
        }
        ref float o = ref MemoryMarshal.GetReference(output);
        int at = t * stride + rowIndex, step = 2 * stride;
        TokenPairs.Store4(a0, a1, a2, a3, ref o, at, stride);
        TokenPairs.Store4(b0, b1, b2, b3, ref o, at + step, stride);
        TokenPairs.Store4(c0, c1, c2, c3, ref o, at + 2 * step, stride);
        TokenPairs.Store4(d0, d1, d2, d3, ref o, at + 3 * step, stride);
    }

    /// <summary>Σw·x per group for both tokens: |w| times x or −x (−x where w &lt; 0; where w = 0 |w| is 0), u8·s8 pair
    /// sums, pairs of pairs (exact integers, as <see cref="IntegerDot.Groups256Evex"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Groups(Vector512<byte> magnitudes, Vector512<sbyte> negative, Vector512<sbyte> x, Vector512<sbyte> minusX, Vector512<short> ones) =>
        Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(magnitudes, Avx512BW.BlendVariable(x, minusX, negative)), ones);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Pair(ref float p, int at) => Vector512.Create(Unsafe.As<float, double>(ref Unsafe.Add(ref p, at))).AsSingle();
}
