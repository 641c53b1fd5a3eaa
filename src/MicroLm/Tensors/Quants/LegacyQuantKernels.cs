using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace MicroLm.Tensors.Quants;

// The 32-value block formats. Layouts (from the GGUF/ggml format description):
//   Q8_0: f16 d, i8 q[32]                      x = d·q
//   Q4_0: f16 d, u8 qs[16]                     x = d·(nibble − 8); low nibbles are values 0..15, high nibbles 16..31
//   Q4_1: f16 d, f16 m, u8 qs[16]              x = d·nibble + m
//   Q5_0: f16 d, u32 qh, u8 qs[16]             x = d·((nibble | fifth bit << 4) − 16); bit j of qh is value j's fifth bit
//   Q5_1: f16 d, f16 m, u32 qh, u8 qs[16]      x = d·(nibble | fifth bit << 4) + m
// Dot products with the Q8_0 activation: Q8_0 and Q4_0 keep the 8-lane contract of IntegerDot; the
// other types sum each block's exact integer product, then in block order sum += isum·(d_w·d_x)
// (+ m_w·s_x for the offset types). Integer sums are exact, so any SIMD width gives the same bits.

internal static class Block
{
    public static float Half(ReadOnlySpan<byte> b, int at) => F16Kernel.HalfToFloat[BinaryPrimitives.ReadUInt16LittleEndian(b[at..])];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Half(ref byte b) => F16Kernel.HalfToFloat[Unsafe.ReadUnaligned<ushort>(ref b)];

    public static int DotQ8(ReadOnlySpan<sbyte> w, ReadOnlySpan<sbyte> x)
    {
        int s = 0;
        for (int i = 0; i < 32; i++) s += w[i] * x[i];
        return s;
    }
}

internal sealed partial class Q8_0Kernel : RowKernel
{
    public static readonly Q8_0Kernel Instance = new();
    /// <summary>Bytes of a block: f16 scale, 32 signed quants.</summary>
    internal const int BlockBytes = 34;
    public override bool UsesQ8Activation => true;

    public override void Dequantize(ReadOnlySpan<byte> row, Span<float> output)
    {
        for (int b = 0; b < output.Length / 32; b++)
        {
            var block = row.Slice(b * BlockBytes, BlockBytes);
            float d = Block.Half(block, 0);
            for (int i = 0; i < 32; i++) output[b * 32 + i] = d * (sbyte)block[2 + i];
        }
    }

    public override float Dot(ReadOnlySpan<byte> row, Activation x)
    {
        ref byte w = ref MemoryMarshal.GetReference(row);
        ref sbyte q = ref MemoryMarshal.GetReference(x.Q8);
        var scales = x.Q8Scales;
        int blocks = x.Length / 32;
        if (IntegerDot.VectorBits >= 256)
        {
            var acc = Vector256<float>.Zero;
            for (int b = 0; b < blocks; b++)
            {
                ref byte block = ref Unsafe.Add(ref w, b * BlockBytes);
                var groups = IntegerDot.Groups256(Vector256.LoadUnsafe(ref Unsafe.As<byte, sbyte>(ref Unsafe.Add(ref block, 2))), Vector256.LoadUnsafe(ref Unsafe.Add(ref q, b * 32)));
                acc += Vector256.ConvertToSingle(groups) * Vector256.Create(Block.Half(ref block) * scales[b]);
            }
            return IntegerDot.Fold(acc.GetLower(), acc.GetUpper());
        }
        var lo = Vector128<float>.Zero; var hi = Vector128<float>.Zero;
        for (int b = 0; b < blocks; b++)
        {
            ref byte block = ref Unsafe.Add(ref w, b * BlockBytes);
            ref sbyte wq = ref Unsafe.As<byte, sbyte>(ref Unsafe.Add(ref block, 2));
            ref sbyte xq = ref Unsafe.Add(ref q, b * 32);
            var (gl, gh) = IntegerDot.Groups128(Vector128.LoadUnsafe(ref wq), Vector128.LoadUnsafe(ref wq, 16), Vector128.LoadUnsafe(ref xq), Vector128.LoadUnsafe(ref xq, 16));
            var scale = Vector128.Create(Block.Half(ref block) * scales[b]);
            lo += Vector128.ConvertToSingle(gl) * scale;
            hi += Vector128.ConvertToSingle(gh) * scale;
        }
        return IntegerDot.Fold(lo, hi);
    }
    protected override void Dot4(ReadOnlySpan<byte> row, Activation a, Activation b, Activation c, Activation d, Span<float> results)
    {
        if (IntegerDot.VectorBits < 256) { base.Dot4(row, a, b, c, d, results); return; }
        ref byte w = ref MemoryMarshal.GetReference(row);
        ref sbyte qa = ref MemoryMarshal.GetReference(a.Q8), qb = ref MemoryMarshal.GetReference(b.Q8);
        ref sbyte qc = ref MemoryMarshal.GetReference(c.Q8), qd = ref MemoryMarshal.GetReference(d.Q8);
        var accA = Vector256<float>.Zero; var accB = Vector256<float>.Zero; var accC = Vector256<float>.Zero; var accD = Vector256<float>.Zero;
        for (int bl = 0; bl < a.Length / 32; bl++)
        {
            ref byte block = ref Unsafe.Add(ref w, bl * BlockBytes);
            var wv = Vector256.LoadUnsafe(ref Unsafe.As<byte, sbyte>(ref Unsafe.Add(ref block, 2)));
            var dwv = Vector256.Create(Block.Half(ref block));
            nuint at = (nuint)(bl * 32);
            // Same per-activation operations as Dot, with the weight block loaded once.
            accA += Vector256.ConvertToSingle(IntegerDot.Groups256(wv, Vector256.LoadUnsafe(ref qa, at))) * (dwv * Vector256.Create(a.Q8Scales[bl]));
            accB += Vector256.ConvertToSingle(IntegerDot.Groups256(wv, Vector256.LoadUnsafe(ref qb, at))) * (dwv * Vector256.Create(b.Q8Scales[bl]));
            accC += Vector256.ConvertToSingle(IntegerDot.Groups256(wv, Vector256.LoadUnsafe(ref qc, at))) * (dwv * Vector256.Create(c.Q8Scales[bl]));
            accD += Vector256.ConvertToSingle(IntegerDot.Groups256(wv, Vector256.LoadUnsafe(ref qd, at))) * (dwv * Vector256.Create(d.Q8Scales[bl]));
        }
        results[0] = IntegerDot.Fold(accA.GetLower(), accA.GetUpper());
        results[1] = IntegerDot.Fold(accB.GetLower(), accB.GetUpper());
        results[2] = IntegerDot.Fold(accC.GetLower(), accC.GetUpper());
        results[3] = IntegerDot.Fold(accD.GetLower(), accD.GetUpper());
    }

    /// <summary>Prefill tiles of two rows × four tokens (the rows a four-row tile leaves over): eight sums at once.
    /// Each (row, token) sum takes Dot's operations, so the bits are Dot's.</summary>
    public override void DotMany2(ReadOnlySpan<byte> rows, int rowBytes, Activation[] xs, int count, Span<float> output, int stride, int rowIndex)
    {
        if (IntegerDot.VectorBits < 256 || count < 4) { base.DotMany2(rows, rowBytes, xs, count, output, stride, rowIndex); return; }
        Span<float> scratch = stackalloc float[24]; // 8 results, then (at 16) 8 scale products
        var eight = scratch[..8];
        int t = 0;
        for (; t + 4 <= count; t += 4)
        {
            Tile2x4(ref MemoryMarshal.GetReference(rows), rowBytes, xs[t], xs[t + 1], xs[t + 2], xs[t + 3], ref MemoryMarshal.GetReference(scratch));
            for (int k = 0; k < 4; k++)
            {
                output[(t + k) * stride + rowIndex] = eight[k];
                output[(t + k) * stride + rowIndex + 1] = eight[4 + k];
            }
        }
        for (; t < count; t++)
        {
            output[t * stride + rowIndex] = Dot(rows[..rowBytes], xs[t]);
            output[t * stride + rowIndex + 1] = Dot(rows.Slice(rowBytes, rowBytes), xs[t]);
        }
    }

    /// <summary>Rows w0, w1 (<paramref name="rowBytes"/> apart) × tokens a..d; results[4·row + token] at <paramref name="scratch"/>,
    /// floats 16..23 the scale products (as <see cref="Tile4x4"/>). For 16 vector registers: the weights are read again
    /// from memory (L1) for the sign step instead of being held, so the tile's sums stay in registers.</summary>
    private static void Tile2x4(ref byte w0, int rowBytes, Activation a, Activation b, Activation c, Activation d, ref float scratch)
    {
        ref byte w1 = ref Unsafe.Add(ref w0, rowBytes);
        ref sbyte qa = ref MemoryMarshal.GetReference(a.Q8), qb = ref MemoryMarshal.GetReference(b.Q8);
        ref sbyte qc = ref MemoryMarshal.GetReference(c.Q8), qd = ref MemoryMarshal.GetReference(d.Q8);
        ref float sa = ref MemoryMarshal.GetArrayDataReference(a.Q8Scales), sb = ref MemoryMarshal.GetArrayDataReference(b.Q8Scales);
        ref float sc = ref MemoryMarshal.GetArrayDataReference(c.Q8Scales), sd = ref MemoryMarshal.GetArrayDataReference(d.Q8Scales);
        ref float p = ref Unsafe.Add(ref scratch, 16);
        Vector256<float> a0 = default, b0 = default, c0 = default, d0 = default, a1 = default, b1 = default, c1 = default, d1 = default;
        int blocks = a.Length / 32;
        for (int bl = 0; bl < blocks; bl++)
        {
            int o = bl * BlockBytes;
            ref byte k0 = ref Unsafe.Add(ref w0, o);
            ref byte k1 = ref Unsafe.Add(ref w1, o);
            var dx = Vector128.Create(Unsafe.Add(ref sa, bl), Unsafe.Add(ref sb, bl), Unsafe.Add(ref sc, bl), Unsafe.Add(ref sd, bl));
            (Vector128.Create(Block.Half(ref k0)) * dx).StoreUnsafe(ref p);
            (Vector128.Create(Block.Half(ref k1)) * dx).StoreUnsafe(ref p, 4);
            ref sbyte m0 = ref Unsafe.As<byte, sbyte>(ref Unsafe.Add(ref k0, 2));
            ref sbyte m1 = ref Unsafe.As<byte, sbyte>(ref Unsafe.Add(ref k1, 2));
            var u0 = IntegerDot.Magnitudes(Vector256.LoadUnsafe(ref m0));
            var u1 = IntegerDot.Magnitudes(Vector256.LoadUnsafe(ref m1));
            nuint at = (nuint)(bl * 32);
            var x = Vector256.LoadUnsafe(ref qa, at);
            a0 += Vector256.ConvertToSingle(IntegerDot.Groups256(u0, Vector256.LoadUnsafe(ref m0), x)) * Vector256.Create(p);
            a1 += Vector256.ConvertToSingle(IntegerDot.Groups256(u1, Vector256.LoadUnsafe(ref m1), x)) * Vector256.Create(Unsafe.Add(ref p, 4));
            x = Vector256.LoadUnsafe(ref qb, at);
            b0 += Vector256.ConvertToSingle(IntegerDot.Groups256(u0, Vector256.LoadUnsafe(ref m0), x)) * Vector256.Create(Unsafe.Add(ref p, 1));
            b1 += Vector256.ConvertToSingle(IntegerDot.Groups256(u1, Vector256.LoadUnsafe(ref m1), x)) * Vector256.Create(Unsafe.Add(ref p, 5));
            x = Vector256.LoadUnsafe(ref qc, at);
            c0 += Vector256.ConvertToSingle(IntegerDot.Groups256(u0, Vector256.LoadUnsafe(ref m0), x)) * Vector256.Create(Unsafe.Add(ref p, 2));
            c1 += Vector256.ConvertToSingle(IntegerDot.Groups256(u1, Vector256.LoadUnsafe(ref m1), x)) * Vector256.Create(Unsafe.Add(ref p, 6));
            x = Vector256.LoadUnsafe(ref qd, at);
            d0 += Vector256.ConvertToSingle(IntegerDot.Groups256(u0, Vector256.LoadUnsafe(ref m0), x)) * Vector256.Create(Unsafe.Add(ref p, 3));
            d1 += Vector256.ConvertToSingle(IntegerDot.Groups256(u1, Vector256.LoadUnsafe(ref m1), x)) * Vector256.Create(Unsafe.Add(ref p, 7));
        }
        IntegerDot.Fold4(a0, b0, c0, d0).StoreUnsafe(ref scratch);
        IntegerDot.Fold4(a1, b1, c1, d1).StoreUnsafe(ref scratch, 4);
    }

    /// <summary>Prefill over four rows, tried by <see cref="WeightMatrix.MatMul"/> before the two-row tiles, four tokens
    /// at a time, where <see cref="PrefillRows"/> declined (fewer than 8 tokens; at AVX2, also no AVX-VNNI): at AVX-512 one
    /// <see cref="Tile4x4"/>; at AVX2 two <see cref="Tile2x4"/> passes (16 ymm registers hold eight sums but not sixteen: the 4 × 4 tile kept 11 of its 16 on the stack). Each (row, token) sum takes Dot's
    /// operations, so the bits are Dot's. Measured (`--prefill-kernels --isa avx2 --formats Q8_0`, Zen 5, CPU time, three
    /// alternations): 110M 43.0–46.5 → 49.1–49.8 GMAC/s, 15M 41.0–44.3 → 46.5–46.6; without VNNI 40.0–41.5 → 42.5–45.2.
    /// Token counts that are not a multiple of four end with <see cref="Dot4Rows"/> (same bits).</summary>
    public override bool DotManyRows4(ReadOnlySpan<byte> rows, int rowBytes, Activation[] xs, int count, Span<float> output, int stride, int rowIndex)
    {
        if (IntegerDot.VectorBits < 256 || count < 4) return false;
        Span<float> scratch = stackalloc float[32]; // 16 results, then 16 scale products
        var results = scratch[..16];
        bool evex = IntegerDot.UseEvex;
        int blocks = xs[0].Length / 32;
        int t = 0;
        for (; t + 4 <= count; t += 4)
        {
            if (evex) Tile4x4(ref MemoryMarshal.GetReference(rows), rowBytes, xs[t], xs[t + 1], xs[t + 2], xs[t + 3], ref MemoryMarshal.GetReference(scratch));
            else
            {
                // Rows 0–1 land in results[0..8), rows 2–3 in [8..16): the 4 × 4 tile's layout.
                Tile2x4(ref MemoryMarshal.GetReference(rows), rowBytes, xs[t], xs[t + 1], xs[t + 2], xs[t + 3], ref MemoryMarshal.GetReference(scratch));
                Tile2x4(ref Unsafe.Add(ref MemoryMarshal.GetReference(rows), 2 * rowBytes), rowBytes, xs[t], xs[t + 1], xs[t + 2], xs[t + 3], ref scratch[8]);
            }
            for (int k = 0; k < 4; k++)
            {
                var o = output.Slice((t + k) * stride + rowIndex, 4);
                o[0] = results[k]; o[1] = results[4 + k]; o[2] = results[8 + k]; o[3] = results[12 + k];
            }
        }
        for (; t < count; t++) Dot4Rows(rows, rowBytes, xs[t], output.Slice(t * stride + rowIndex, 4));
        return true;
    }

    /// <summary>Rows w0..w3 (<paramref name="rowBytes"/> apart) × tokens a..d; results[4·row + token] at <paramref name="scratch"/>,
    /// whose floats 16..31 hold each block's scale products d_w·d_x (four vector multiplies per block instead of
    /// sixteen, then read back as broadcasts: loads, not arithmetic). AVX-512 only: the sign step is a masked blend of x
    /// and −x (EVEX, <see cref="IntegerDot.Groups256Evex"/>), so the JIT may use all 32 registers for the 16 sums, four
    /// magnitudes and masks. Measured (110M shapes, 128 tokens, CPU time): 34.8 → 40 GMAC/s against the 2 × 4 tile at
    /// AVX-512; the blend +2–7 % over vpsignb (VEX only, so 16 registers).</summary>
    private static void Tile4x4(ref byte w0, int rowBytes, Activation a, Activation b, Activation c, Activation d, ref float scratch)
    {
        ref byte w1 = ref Unsafe.Add(ref w0, rowBytes);
        ref byte w2 = ref Unsafe.Add(ref w0, 2 * rowBytes);
        ref byte w3 = ref Unsafe.Add(ref w0, 3 * rowBytes);
        ref sbyte qa = ref MemoryMarshal.GetReference(a.Q8), qb = ref MemoryMarshal.GetReference(b.Q8);
        ref sbyte qc = ref MemoryMarshal.GetReference(c.Q8), qd = ref MemoryMarshal.GetReference(d.Q8);
        ref float sa = ref MemoryMarshal.GetArrayDataReference(a.Q8Scales), sb = ref MemoryMarshal.GetArrayDataReference(b.Q8Scales);
        ref float sc = ref MemoryMarshal.GetArrayDataReference(c.Q8Scales), sd = ref MemoryMarshal.GetArrayDataReference(d.Q8Scales);
        ref float p = ref Unsafe.Add(ref scratch, 16);
        Vector256<float> a0 = default, b0 = default, c0 = default, d0 = default, a1 = default, b1 = default, c1 = default, d1 = default;
        Vector256<float> a2 = default, b2 = default, c2 = default, d2 = default, a3 = default, b3 = default, c3 = default, d3 = default;
        int blocks = a.Length / 32;
        for (int bl = 0; bl < blocks; bl++)
        {
            int o = bl * BlockBytes;
            ref byte k0 = ref Unsafe.Add(ref w0, o);
            ref byte k1 = ref Unsafe.Add(ref w1, o);
            ref byte k2 = ref Unsafe.Add(ref w2, o);
            ref byte k3 = ref Unsafe.Add(ref w3, o);
            // s = d_w · d_x for the 16 pairs, the same float products Dot forms (multiplication commutes exactly).
            var dx = Vector128.Create(Unsafe.Add(ref sa, bl), Unsafe.Add(ref sb, bl), Unsafe.Add(ref sc, bl), Unsafe.Add(ref sd, bl));
            (Vector128.Create(Block.Half(ref k0)) * dx).StoreUnsafe(ref p);
            (Vector128.Create(Block.Half(ref k1)) * dx).StoreUnsafe(ref p, 4);
            (Vector128.Create(Block.Half(ref k2)) * dx).StoreUnsafe(ref p, 8);
            (Vector128.Create(Block.Half(ref k3)) * dx).StoreUnsafe(ref p, 12);
            var v0 = Vector256.LoadUnsafe(ref Unsafe.As<byte, sbyte>(ref Unsafe.Add(ref k0, 2)));
            var u0 = IntegerDot.Magnitudes(v0); var n0 = Negatives(v0);
            var v1 = Vector256.LoadUnsafe(ref Unsafe.As<byte, sbyte>(ref Unsafe.Add(ref k1, 2)));
            var u1 = IntegerDot.Magnitudes(v1); var n1 = Negatives(v1);
            var v2 = Vector256.LoadUnsafe(ref Unsafe.As<byte, sbyte>(ref Unsafe.Add(ref k2, 2)));
            var u2 = IntegerDot.Magnitudes(v2); var n2 = Negatives(v2);
            var v3 = Vector256.LoadUnsafe(ref Unsafe.As<byte, sbyte>(ref Unsafe.Add(ref k3, 2)));
            var u3 = IntegerDot.Magnitudes(v3); var n3 = Negatives(v3);
            nuint at = (nuint)(bl * 32);
            var x = Vector256.LoadUnsafe(ref qa, at); var mx = Minus(x);
            a0 += Vector256.ConvertToSingle(IntegerDot.Groups256Evex(u0, n0, x, mx)) * Vector256.Create(p);
            a1 += Vector256.ConvertToSingle(IntegerDot.Groups256Evex(u1, n1, x, mx)) * Vector256.Create(Unsafe.Add(ref p, 4));
            a2 += Vector256.ConvertToSingle(IntegerDot.Groups256Evex(u2, n2, x, mx)) * Vector256.Create(Unsafe.Add(ref p, 8));
            a3 += Vector256.ConvertToSingle(IntegerDot.Groups256Evex(u3, n3, x, mx)) * Vector256.Create(Unsafe.Add(ref p, 12));
            x = Vector256.LoadUnsafe(ref qb, at); mx = Minus(x);
            b0 += Vector256.ConvertToSingle(IntegerDot.Groups256Evex(u0, n0, x, mx)) * Vector256.Create(Unsafe.Add(ref p, 1));
            b1 += Vector256.ConvertToSingle(IntegerDot.Groups256Evex(u1, n1, x, mx)) * Vector256.Create(Unsafe.Add(ref p, 5));
            b2 += Vector256.ConvertToSingle(IntegerDot.Groups256Evex(u2, n2, x, mx)) * Vector256.Create(Unsafe.Add(ref p, 9));
            b3 += Vector256.ConvertToSingle(IntegerDot.Groups256Evex(u3, n3, x, mx)) * Vector256.Create(Unsafe.Add(ref p, 13));
            x = Vector256.LoadUnsafe(ref qc, at); mx = Minus(x);
            c0 += Vector256.ConvertToSingle(IntegerDot.Groups256Evex(u0, n0, x, mx)) * Vector256.Create(Unsafe.Add(ref p, 2));
            c1 += Vector256.ConvertToSingle(IntegerDot.Groups256Evex(u1, n1, x, mx)) * Vector256.Create(Unsafe.Add(ref p, 6));
            c2 += Vector256.ConvertToSingle(IntegerDot.Groups256Evex(u2, n2, x, mx)) * Vector256.Create(Unsafe.Add(ref p, 10));
            c3 += Vector256.ConvertToSingle(IntegerDot.Groups256Evex(u3, n3, x, mx)) * Vector256.Create(Unsafe.Add(ref p, 14));
            x = Vector256.LoadUnsafe(ref qd, at); mx = Minus(x);
            d0 += Vector256.ConvertToSingle(IntegerDot.Groups256Evex(u0, n0, x, mx)) * Vector256.Create(Unsafe.Add(ref p, 3));
            d1 += Vector256.ConvertToSingle(IntegerDot.Groups256Evex(u1, n1, x, mx)) * Vector256.Create(Unsafe.Add(ref p, 7));
            d2 += Vector256.ConvertToSingle(IntegerDot.Groups256Evex(u2, n2, x, mx)) * Vector256.Create(Unsafe.Add(ref p, 11));
            d3 += Vector256.ConvertToSingle(IntegerDot.Groups256Evex(u3, n3, x, mx)) * Vector256.Create(Unsafe.Add(ref p, 15));
        }
        IntegerDot.Fold4(a0, b0, c0, d0).StoreUnsafe(ref scratch);
        IntegerDot.Fold4(a1, b1, c1, d1).StoreUnsafe(ref scratch, 4);
        IntegerDot.Fold4(a2, b2, c2, d2).StoreUnsafe(ref scratch, 8);
        IntegerDot.Fold4(a3, b3, c3, d3).StoreUnsafe(ref scratch, 12);
    }

    // Tile4x4's sign step: per weight block the mask w < 0, per token block −x (then IntegerDot.Groups256Evex blends).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<sbyte> Negatives(Vector256<sbyte> w) => Vector256.LessThan(w, Vector256<sbyte>.Zero);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<sbyte> Minus(Vector256<sbyte> x) => Vector256<sbyte>.Zero - x;

    // Four rows per pass with the rows two passes ahead prefetched, three lines per 4-block step of 136 bytes (two
    // missed some lines): without the prefetch four row streams halved 110M-shape decode; with it,
    // 102 -> ~135 tok/s there and 560 -> 800+ on the 15M shape.
    public override bool PrefersFourRows(int rowBytes) => true;

    public override void Dot4Rows(ReadOnlySpan<byte> rows, int rowBytes, Activation x, Span<float> results)
    {
        if (IntegerDot.VectorBits < 256) { base.Dot4Rows(rows, rowBytes, x, results); return; }
        ref byte w0 = ref MemoryMarshal.GetReference(rows);
        ref byte w1 = ref Unsafe.Add(ref w0, rowBytes);
        ref byte w2 = ref Unsafe.Add(ref w0, 2 * rowBytes);
        ref byte w3 = ref Unsafe.Add(ref w0, 3 * rowBytes);
        ref sbyte q = ref MemoryMarshal.GetReference(x.Q8);
        var scales = x.Q8Scales;
        int ahead = 8 * rowBytes;
        var a0 = Vector256<float>.Zero; var a1 = Vector256<float>.Zero; var a2 = Vector256<float>.Zero; var a3 = Vector256<float>.Zero;
        for (int b = 0; b < x.Length / 32; b++)
        {
            var xv = Vector256.LoadUnsafe(ref q, (nuint)(b * 32));
            var dxv = Vector256.Create(scales[b]);
            int o = b * BlockBytes;
            IntegerDot.Prefetch(ref w0, ahead + b * 4 * BlockBytes);
            IntegerDot.Prefetch(ref w0, ahead + b * 4 * BlockBytes + 64);
            IntegerDot.Prefetch(ref w0, ahead + b * 4 * BlockBytes + 128);
            // Same per-row operations as Dot, with the activation block loaded once.
            a0 += Vector256.ConvertToSingle(IntegerDot.Groups256(Vector256.LoadUnsafe(ref Unsafe.As<byte, sbyte>(ref Unsafe.Add(ref w0, o + 2))), xv)) * (Vector256.Create(Block.Half(ref Unsafe.Add(ref w0, o))) * dxv);
            a1 += Vector256.ConvertToSingle(IntegerDot.Groups256(Vector256.LoadUnsafe(ref Unsafe.As<byte, sbyte>(ref Unsafe.Add(ref w1, o + 2))), xv)) * (Vector256.Create(Block.Half(ref Unsafe.Add(ref w1, o))) * dxv);
            a2 += Vector256.ConvertToSingle(IntegerDot.Groups256(Vector256.LoadUnsafe(ref Unsafe.As<byte, sbyte>(ref Unsafe.Add(ref w2, o + 2))), xv)) * (Vector256.Create(Block.Half(ref Unsafe.Add(ref w2, o))) * dxv);
            a3 += Vector256.ConvertToSingle(IntegerDot.Groups256(Vector256.LoadUnsafe(ref Unsafe.As<byte, sbyte>(ref Unsafe.Add(ref w3, o + 2))), xv)) * (Vector256.Create(Block.Half(ref Unsafe.Add(ref w3, o))) * dxv);
        }
        // Fold4 is Fold on each sum (the same additions on a transposed block; measured 2-8 % faster here than four
        // Folds). A NaN's sign may differ from Fold's (the vector adds may take their operands in either order), as
        // it may across CPUs: a NaN in the logits stops generation (docs/determinism.md), so no NaN reaches a trace.
        IntegerDot.Fold4(a0, a1, a2, a3).CopyTo(results);
    }
}

internal sealed partial class Q4_0Kernel : RowKernel
{
    public static readonly Q4_0Kernel Instance = new();
    /// <summary>Bytes of a block: f16 scale, 16 bytes of nibbles.</summary>
    internal const int BlockBytes = 18;
    public override bool UsesQ8Activation => true;

    public override void Dequantize(ReadOnlySpan<byte> row, Span<float> output)
    {
        for (int b = 0; b < output.Length / 32; b++)
        {
            var block = row.Slice(b * BlockBytes, BlockBytes);
            float d = Block.Half(block, 0);
            for (int i = 0; i < 16; i++)
            {
                output[b * 32 + i] = d * ((block[2 + i] & 0xF) - 8);
                output[b * 32 + i + 16] = d * ((block[2 + i] >> 4) - 8);
            }
        }
    }

    public override unsafe float Dot(ReadOnlySpan<byte> row, Activation x)
    {
        ref byte w = ref MemoryMarshal.GetReference(row);
        ref sbyte q = ref MemoryMarshal.GetReference(x.Q8);
        var scales = x.Q8Scales;
        int blocks = x.Length / 32;
        if (IntegerDot.VectorBits >= 256)
        fixed (byte* pinned = row)
        {
            ref int sums = ref MemoryMarshal.GetArrayDataReference(x.Q8GroupSums8);
            var acc = Vector256<float>.Zero;
            for (int b = 0; b < blocks; b++)
            {
                ref byte block = ref Unsafe.Add(ref w, b * BlockBytes);
                var groups = IntegerDot.GroupsQ4(ref Unsafe.Add(ref block, 2), Vector256.LoadUnsafe(ref Unsafe.Add(ref q, b * 32)), Vector256.LoadUnsafe(ref sums, (nuint)(b * 8)));
                acc += Vector256.ConvertToSingle(groups) * Vector256.Create(Block.Half(ref block) * scales[b]);
            }
            return IntegerDot.Fold(acc.GetLower(), acc.GetUpper());
        }
        var lo = Vector128<float>.Zero; var hi = Vector128<float>.Zero;
        for (int b = 0; b < blocks; b++)
        {
            ref byte block = ref Unsafe.Add(ref w, b * BlockBytes);
            var (vl, vh) = IntegerDot.UnpackQ4(ref Unsafe.Add(ref block, 2));
            ref sbyte xq = ref Unsafe.Add(ref q, b * 32);
            var (gl, gh) = IntegerDot.Groups128(vl, vh, Vector128.LoadUnsafe(ref xq), Vector128.LoadUnsafe(ref xq, 16));
            var scale = Vector128.Create(Block.Half(ref block) * scales[b]);
            lo += Vector128.ConvertToSingle(gl) * scale;
            hi += Vector128.ConvertToSingle(gh) * scale;
        }
        return IntegerDot.Fold(lo, hi);
    }

    protected override unsafe void Dot4(ReadOnlySpan<byte> row, Activation a, Activation b, Activation c, Activation d, Span<float> results)
    {
        if (IntegerDot.VectorBits < 256) { base.Dot4(row, a, b, c, d, results); return; }
        fixed (byte* pinned = row) Dot4Pinned(row, a, b, c, d, results);
    }

    private static void Dot4Pinned(ReadOnlySpan<byte> row, Activation a, Activation b, Activation c, Activation d, Span<float> results)
    {
        ref byte w = ref MemoryMarshal.GetReference(row);
        ref sbyte qa = ref MemoryMarshal.GetReference(a.Q8), qb = ref MemoryMarshal.GetReference(b.Q8);
        ref sbyte qc = ref MemoryMarshal.GetReference(c.Q8), qd = ref MemoryMarshal.GetReference(d.Q8);
        ref int sa = ref MemoryMarshal.GetArrayDataReference(a.Q8GroupSums8), sb = ref MemoryMarshal.GetArrayDataReference(b.Q8GroupSums8);
        ref int sc = ref MemoryMarshal.GetArrayDataReference(c.Q8GroupSums8), sd = ref MemoryMarshal.GetArrayDataReference(d.Q8GroupSums8);
        var accA = Vector256<float>.Zero; var accB = Vector256<float>.Zero; var accC = Vector256<float>.Zero; var accD = Vector256<float>.Zero;
        for (int bl = 0; bl < a.Length / 32; bl++)
        {
            ref byte block = ref Unsafe.Add(ref w, bl * BlockBytes);
            ref byte qs = ref Unsafe.Add(ref block, 2);
            var dwv = Vector256.Create(Block.Half(ref block));
            nuint at = (nuint)(bl * 32), g = (nuint)(bl * 8);
            // Same per-activation operations as Dot.
            accA += Vector256.ConvertToSingle(IntegerDot.GroupsQ4(ref qs, Vector256.LoadUnsafe(ref qa, at), Vector256.LoadUnsafe(ref sa, g))) * (dwv * Vector256.Create(a.Q8Scales[bl]));
            accB += Vector256.ConvertToSingle(IntegerDot.GroupsQ4(ref qs, Vector256.LoadUnsafe(ref qb, at), Vector256.LoadUnsafe(ref sb, g))) * (dwv * Vector256.Create(b.Q8Scales[bl]));
            accC += Vector256.ConvertToSingle(IntegerDot.GroupsQ4(ref qs, Vector256.LoadUnsafe(ref qc, at), Vector256.LoadUnsafe(ref sc, g))) * (dwv * Vector256.Create(c.Q8Scales[bl]));
            accD += Vector256.ConvertToSingle(IntegerDot.GroupsQ4(ref qs, Vector256.LoadUnsafe(ref qd, at), Vector256.LoadUnsafe(ref sd, g))) * (dwv * Vector256.Create(d.Q8Scales[bl]));
        }
        results[0] = IntegerDot.Fold(accA.GetLower(), accA.GetUpper());
        results[1] = IntegerDot.Fold(accB.GetLower(), accB.GetUpper());
        results[2] = IntegerDot.Fold(accC.GetLower(), accC.GetUpper());
        results[3] = IntegerDot.Fold(accD.GetLower(), accD.GetUpper());
    }

    /// <summary>Prefill: the row is unpacked once into Q8_0 blocks (same scale, values nibble − 8), whose
    /// Q8_0 dot is this kernel's dot operation for operation, so the bits are the same.</summary>
    public override void DotMany(ReadOnlySpan<byte> row, Activation[] xs, int count, Span<float> output, int stride, int rowIndex)
    {
        int blocks = xs[0].Length / 32;
        if (count < 8 || blocks > 512) { base.DotMany(row, xs, count, output, stride, rowIndex); return; }
        Span<byte> q8 = stackalloc byte[blocks * Q8_0Kernel.BlockBytes];
        UnpackToQ8(row, q8);
        Q8_0Kernel.Instance.DotMany(q8, xs, count, output, stride, rowIndex);
    }

    /// <summary>A Q4_0 row as Q8_0 blocks: the same scale, values nibble − 8.</summary>
    private static void UnpackToQ8(ReadOnlySpan<byte> row, Span<byte> q8)
    {
        for (int b = 0; b < q8.Length / Q8_0Kernel.BlockBytes; b++)
        {
            var block = row.Slice(b * BlockBytes, BlockBytes);
            var target = q8.Slice(b * Q8_0Kernel.BlockBytes, Q8_0Kernel.BlockBytes);
            target[0] = block[0]; target[1] = block[1];
            var (lo, hi) = IntegerDot.UnpackQ4(ref MemoryMarshal.GetReference(block[2..]));
            lo.AsByte().CopyTo(target[2..]);
            hi.AsByte().CopyTo(target[18..]);
        }
    }

    /// <summary>Prefill over two rows: both unpacked once into Q8_0 blocks (as <see cref="DotMany"/>), then
    /// Q8_0's two-row tiles.</summary>
    public override void DotMany2(ReadOnlySpan<byte> rows, int rowBytes, Activation[] xs, int count, Span<float> output, int stride, int rowIndex)
    {
        int blocks = xs[0].Length / 32;
        if (count < 8 || blocks > 256) { base.DotMany2(rows, rowBytes, xs, count, output, stride, rowIndex); return; }
        Span<byte> q8 = stackalloc byte[2 * blocks * Q8_0Kernel.BlockBytes];
        UnpackToQ8(rows[..rowBytes], q8[..(blocks * Q8_0Kernel.BlockBytes)]);
        UnpackToQ8(rows.Slice(rowBytes, rowBytes), q8[(blocks * Q8_0Kernel.BlockBytes)..]);
        Q8_0Kernel.Instance.DotMany2(q8, blocks * Q8_0Kernel.BlockBytes, xs, count, output, stride, rowIndex);
    }

    public override bool PrefersFourRows(int rowBytes) => true;

    public override unsafe void Dot4Rows(ReadOnlySpan<byte> rows, int rowBytes, Activation x, Span<float> results)
    {
        if (IntegerDot.VectorBits < 256) { base.Dot4Rows(rows, rowBytes, x, results); return; }
        fixed (byte* pinned = rows) Dot4RowsPinned(pinned, rowBytes, x, results);
    }

    /// <summary>Four rows at <paramref name="w0"/> (pinned), <paramref name="rowBytes"/> apart, each with Dot's
    /// operations. Addressed by pointer plus one running byte offset per stream (weights, activation blocks): the
    /// index arithmetic of ref-and-int offsets had been about a third of the loop's instructions. Measured in CPU time
    /// (decode matmuls, A/B in one process, loaded machine, AVX2): 110M 5.77 → 5.12 and 5.05 → 4.79-4.88 ms/token,
    /// 15M 0.735 → 0.648 and 0.645 → 0.596.</summary>
    private static unsafe void Dot4RowsPinned(byte* w0, int rowBytes, Activation x, Span<float> results)
    {
        byte* w1 = w0 + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
        // Software prefetch of the rows two passes ahead: the hardware prefetcher alone left the loop
        // waiting on memory. A step reads 72 bytes, so it prefetches two lines: with one, every ninth line
        // was missed. 110M-shape decode, 1 thread: 91 -> 155 tok/s (one line per step) -> ~180 (two).
        byte* ahead = w0 + 8 * rowBytes;
        ref byte q = ref Unsafe.As<sbyte, byte>(ref MemoryMarshal.GetReference(x.Q8));
        ref byte sums = ref Unsafe.As<int, byte>(ref MemoryMarshal.GetArrayDataReference(x.Q8GroupSums8));
        ref float scales = ref MemoryMarshal.GetArrayDataReference(x.Q8Scales);
        ref float halves = ref MemoryMarshal.GetArrayDataReference(F16Kernel.HalfToFloat);
        nuint blocks = (nuint)(x.Length / 32);
        var a0 = Vector256<float>.Zero; var a1 = Vector256<float>.Zero; var a2 = Vector256<float>.Zero; var a3 = Vector256<float>.Zero;
        // o: the block's byte offset in each row; xo: its activation block's (32 quants, and 8 group sums of 4 bytes).
        nuint o = 0, xo = 0;
        for (nuint b = 0; b < blocks; b++, o += BlockBytes, xo += 32)
        {
            var xv = Vector256.LoadUnsafe(ref q, xo).AsSByte();
            var gs = Vector256.LoadUnsafe(ref sums, xo).AsInt32();
            var dxv = Vector256.Create(Unsafe.Add(ref scales, b));
            IntegerDot.Prefetch(ahead + 4 * o);
            IntegerDot.Prefetch(ahead + 4 * o + 64);
            // Same per-row operations as Dot, with the activation block loaded once.
            a0 += Vector256.ConvertToSingle(IntegerDot.GroupsQ4(w0 + o + 2, xv, gs)) * (Vector256.Create(Unsafe.Add(ref halves, (nuint)(*(ushort*)(w0 + o)))) * dxv);
            a1 += Vector256.ConvertToSingle(IntegerDot.GroupsQ4(w1 + o + 2, xv, gs)) * (Vector256.Create(Unsafe.Add(ref halves, (nuint)(*(ushort*)(w1 + o)))) * dxv);
            a2 += Vector256.ConvertToSingle(IntegerDot.GroupsQ4(w2 + o + 2, xv, gs)) * (Vector256.Create(Unsafe.Add(ref halves, (nuint)(*(ushort*)(w2 + o)))) * dxv);
            a3 += Vector256.ConvertToSingle(IntegerDot.GroupsQ4(w3 + o + 2, xv, gs)) * (Vector256.Create(Unsafe.Add(ref halves, (nuint)(*(ushort*)(w3 + o)))) * dxv);
        }
        // Fold4 is Fold on each sum (the same additions on a transposed block; measured 2-8 % faster here than four
        // Folds). A NaN's sign may differ from Fold's (the vector adds may take their operands in either order), as
        // it may across CPUs: a NaN in the logits stops generation (docs/determinism.md), so no NaN reaches a trace.
        IntegerDot.Fold4(a0, a1, a2, a3).CopyTo(results);
    }
}

internal sealed partial class Q4_1Kernel : RowKernel
{
    public static readonly Q4_1Kernel Instance = new();
    /// <summary>Bytes of a block: f16 scale, f16 minimum, 16 bytes of nibbles.</summary>
    internal const int BlockBytes = 20;
    public override bool UsesQ8Activation => true;

    public override void Dequantize(ReadOnlySpan<byte> row, Span<float> output)
    {
        for (int b = 0; b < output.Length / 32; b++)
        {
            var block = row.Slice(b * BlockBytes, BlockBytes);
            float d = Block.Half(block, 0), m = Block.Half(block, 2);
            for (int i = 0; i < 16; i++)
            {
                output[b * 32 + i] = d * (block[4 + i] & 0xF) + m;
                output[b * 32 + i + 16] = d * (block[4 + i] >> 4) + m;
            }
        }
    }

    public override float Dot(ReadOnlySpan<byte> row, Activation x)
    {
        float sum = 0;
        var q = x.Q8;
        for (int b = 0; b < x.Length / 32; b++)
        {
            var block = row.Slice(b * BlockBytes, BlockBytes);
            int o = b * 32, isum = 0;
            for (int i = 0; i < 16; i++)
                isum += (block[4 + i] & 0xF) * q[o + i] + (block[4 + i] >> 4) * q[o + i + 16];
            sum += isum * (Block.Half(block, 0) * x.Q8Scales[b]) + Block.Half(block, 2) * x.Q8ScaledSums[b];
        }
        return sum;
    }
}

internal sealed partial class Q5_0Kernel : RowKernel
{
    public static readonly Q5_0Kernel Instance = new();
    /// <summary>Bytes of a block: f16 scale, 32 fifth bits, 16 bytes of nibbles.</summary>
    internal const int BlockBytes = 22;
    public override bool UsesQ8Activation => true;

    private static int Value(ReadOnlySpan<byte> block, uint qh, int i, int qsAt) =>
        i < 16 ? (block[qsAt + i] & 0xF) | (int)((qh >> i) & 1) << 4
               : (block[qsAt + i - 16] >> 4) | (int)((qh >> i) & 1) << 4;

    public override void Dequantize(ReadOnlySpan<byte> row, Span<float> output)
    {
        for (int b = 0; b < output.Length / 32; b++)
        {
            var block = row.Slice(b * BlockBytes, BlockBytes);
            float d = Block.Half(block, 0);
            uint qh = BinaryPrimitives.ReadUInt32LittleEndian(block[2..]);
            for (int i = 0; i < 32; i++) output[b * 32 + i] = d * (Value(block, qh, i, 6) - 16);
        }
    }

    public override float Dot(ReadOnlySpan<byte> row, Activation x)
    {
        float sum = 0;
        var q = x.Q8;
        for (int b = 0; b < x.Length / 32; b++)
        {
            var block = row.Slice(b * BlockBytes, BlockBytes);
            uint qh = BinaryPrimitives.ReadUInt32LittleEndian(block[2..]);
            int o = b * 32, isum = 0;
            for (int i = 0; i < 32; i++) isum += (Value(block, qh, i, 6) - 16) * q[o + i];
            sum += isum * (Block.Half(block, 0) * x.Q8Scales[b]);
        }
        return sum;
    }
}

internal sealed partial class Q5_1Kernel : RowKernel
{
    public static readonly Q5_1Kernel Instance = new();
    /// <summary>Bytes of a block: f16 scale, f16 minimum, 32 fifth bits, 16 bytes of nibbles.</summary>
    internal const int BlockBytes = 24;
    public override bool UsesQ8Activation => true;

    private static int Value(ReadOnlySpan<byte> block, uint qh, int i) =>
        i < 16 ? (block[8 + i] & 0xF) | (int)((qh >> i) & 1) << 4
               : (block[8 + i - 16] >> 4) | (int)((qh >> i) & 1) << 4;

    public override void Dequantize(ReadOnlySpan<byte> row, Span<float> output)
    {
        for (int b = 0; b < output.Length / 32; b++)
        {
            var block = row.Slice(b * BlockBytes, BlockBytes);
            float d = Block.Half(block, 0), m = Block.Half(block, 2);
            uint qh = BinaryPrimitives.ReadUInt32LittleEndian(block[4..]);
            for (int i = 0; i < 32; i++) output[b * 32 + i] = d * Value(block, qh, i) + m;
        }
    }

    public override float Dot(ReadOnlySpan<byte> row, Activation x)
    {
        float sum = 0;
        var q = x.Q8;
        for (int b = 0; b < x.Length / 32; b++)
        {
            var block = row.Slice(b * BlockBytes, BlockBytes);
            uint qh = BinaryPrimitives.ReadUInt32LittleEndian(block[4..]);
            int o = b * 32, isum = 0;
            for (int i = 0; i < 32; i++) isum += Value(block, qh, i) * q[o + i];
            sum += isum * (Block.Half(block, 0) * x.Q8Scales[b]) + Block.Half(block, 2) * x.Q8ScaledSums[b];
        }
        return sum;
    }
}

/// <summary>Prefill tiles over weights unpacked once per four-row group into unsigned bytes u = w + offset (Q4_0's nibbles,
/// offset 8; Q8_0's quants, offset 128), block-major (4 × 32 bytes per block), with their scales d_w (4 floats per
/// block). Started from −offset·Σx, <see cref="IntegerDot.GroupsUnsigned"/> gives the exact Σw·x of each group, so no
/// sign step per (row, token) pair; then Dot's float steps, so Dot's bits.</summary>
internal static class UnsignedTiles
{
    /// <summary>A format's unsigned form: −offset·Σx per group of 4 from <see cref="Activation.Q8GroupSums8"/> (8·Σx),
    /// and one block's 32 quants as u (the block's bytes after its 2-byte F16 scale).</summary>
    public interface IOffset
    {
        static abstract Vector256<int> Start(Vector256<int> groupSums8);

        static abstract int BlockBytes { get; }

        static abstract void UnpackQuants(ref byte quants, ref byte unsigned);
    }

    /// <summary>Q4_0's nibbles, n = w + 8, in value order.</summary>
    public struct NibbleOffset : IOffset
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Start(Vector256<int> groupSums8) => Vector256<int>.Zero - groupSums8;

        public static int BlockBytes => Q4_0Kernel.BlockBytes;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void UnpackQuants(ref byte quants, ref byte unsigned)
        {
            var packed = Vector128.LoadUnsafe(ref quants);
            (packed & Vector128.Create((byte)0x0F)).StoreUnsafe(ref unsigned);
            Vector128.ShiftRightLogical(packed, 4).StoreUnsafe(ref unsigned, 16);
        }
    }

    /// <summary>Q8_0's quants as w + 128 (AVX-VNNI only, see <see cref="IntegerDot.GroupsUnsigned"/>).</summary>
    public struct Q8Offset : IOffset
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Start(Vector256<int> groupSums8) => Vector256<int>.Zero - Vector256.ShiftLeft(groupSums8, 4);

        public static int BlockBytes => Q8_0Kernel.BlockBytes;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void UnpackQuants(ref byte quants, ref byte unsigned) =>
            (Vector256.LoadUnsafe(ref quants) ^ Vector256.Create((byte)0x80)).StoreUnsafe(ref unsigned);
    }

    /// <summary>Four rows (<paramref name="rowBytes"/> apart) as u, block-major (4 × 32 bytes per block), and their scales
    /// d_w (4 floats per block).</summary>
    private static void Unpack<TOffset>(ReadOnlySpan<byte> rows, int rowBytes, int blocks, Span<byte> unsigned, Span<float> scales)
        where TOffset : struct, IOffset
    {
        ref byte u = ref MemoryMarshal.GetReference(unsigned);
        for (int bl = 0; bl < blocks; bl++)
            for (int r = 0; r < 4; r++)
            {
                ref byte k = ref Unsafe.Add(ref MemoryMarshal.GetReference(rows), r * rowBytes + bl * TOffset.BlockBytes);
                TOffset.UnpackQuants(ref Unsafe.Add(ref k, 2), ref Unsafe.Add(ref u, bl * 128 + r * 32));
                scales[bl * 4 + r] = Block.Half(ref k);
            }
    }

    [ThreadStatic] private static byte[]? t_pairs;
    [ThreadStatic] private static float[]? t_pairScales;

    /// <summary>Whether <see cref="PrefillRows{TOffset}"/> runs: 256-bit integer dots (no EVEX: at 512 bits the token-pair
    /// tiles run), eight tokens or more, rows of up to 128 blocks (the unpacked group lives on the stack).</summary>
    public static bool Usable(int count, int blocks) => IntegerDot.VectorBits >= 256 && !IntegerDot.UseEvex && count >= 8 && blocks <= 128;

    /// <summary>Prefill over rows [rowStart, rowEnd) with the batch laid out once per call (<see cref="Prepare"/>): per
    /// four-row group the rows unpacked once, the next group prefetched, then two <see cref="Tile4x2{TOffset}"/> passes
    /// per four tokens; tokens past the last four take <paramref name="kernel"/>'s Dot4Rows. Returns the first row not done.
    /// The 4 × 2 passes replaced 4 × 4 tiles that kept 8 (Q4_0) or 11 (Q8_0) of their 16 sums on the stack
    /// (docs/performance.md); the laid-out batch replaced reading each token's activation directly
    /// (`--prefill-kernels --isa avx2 --shapes 110M,15M`, Zen 5, three alternations: 110M Q4_0 55.0–58.6 → 62.1–62.3
    /// GMAC/s, Q8_0 55.8–56.3 → 59.4–60.2; 15M Q4_0 51.7–54.8 → 58.1–59.1, Q8_0 51.5–52.5 → 55.6–56.6).</summary>
    public static int PrefillRows<TOffset>(RowKernel kernel, ReadOnlySpan<byte> data, int rowBytes, Activation[] xs, int count, Span<float> output, int stride, int rowStart, int rowEnd)
        where TOffset : struct, IOffset
    {
        int blocks = xs[0].Length / 32, tiled = count & ~3;
        RowKernel.CheckBatchRange(count, output, stride, rowStart, rowEnd);
        Prepare(xs, tiled / 2, blocks, out var pairs, out var pairScales);
        var unsigned = IO.CacheLines.Start(stackalloc byte[blocks * 128 + IO.CacheLines.Bytes - 1], blocks * 128);
        Span<float> scales = stackalloc float[blocks * 4];
        Span<float> scratch = stackalloc float[32]; // per pass 8 results, then (at 16) 8 scale products
        for (; rowStart + 4 <= rowEnd; rowStart += 4)
        {
            var rows = data.Slice(rowStart * rowBytes, 4 * rowBytes);
            Unpack<TOffset>(rows, rowBytes, blocks, unsigned, scales);
            RowKernel.PrefetchNextGroup(data, rowBytes, rowStart, rowEnd);
            for (int t = 0; t < tiled; t += 4)
            {
                // Tokens t, t+1 land in scratch[0..8), t+2, t+3 in [8..16): results[4·token + row].
                Tile4x2<TOffset>(ref MemoryMarshal.GetReference(unsigned), ref MemoryMarshal.GetReference(scales), pairs.Slice(t / 2 * blocks * 128), pairScales.Slice(t * blocks), blocks, ref MemoryMarshal.GetReference(scratch));
                Tile4x2<TOffset>(ref MemoryMarshal.GetReference(unsigned), ref MemoryMarshal.GetReference(scales), pairs.Slice((t / 2 + 1) * blocks * 128), pairScales.Slice((t + 2) * blocks), blocks, ref scratch[8]);
                for (int k = 0; k < 4; k++) scratch.Slice(4 * k, 4).CopyTo(output.Slice((t + k) * stride + rowStart, 4));
            }
            for (int t = tiled; t < count; t++) kernel.Dot4Rows(rows, rowBytes, xs[t], output.Slice(t * stride + rowStart, 4));
        }
        return rowStart;
    }

    /// <summary>Lays out tokens [0, 2·pairs) in the order <see cref="Tile4x2{TOffset}"/> reads them, one stream per token
    /// pair: for pair k and block b, at (k·blocks + b)·128 bytes, token 2k's 32 quants, token 2k+1's, then their 8·Σx
    /// group sums (8 ints each); the scales at (k·blocks + b)·2 (+1 for token 2k+1). Read straight from each token's
    /// activation, a pass had six streams (quants, group sums and scales of two tokens).</summary>
    private static void Prepare(Activation[] xs, int pairs, int blocks, out Span<byte> laidOut, out Span<float> laidOutScales)
    {
        int bytes = pairs * blocks * 128;
        var data = t_pairs is { } d && d.Length >= bytes + IO.CacheLines.Bytes ? d : t_pairs = GC.AllocateArray<byte>(bytes + IO.CacheLines.Bytes, pinned: true);
        var scales = t_pairScales is { } f && f.Length >= 2 * pairs * blocks ? f : t_pairScales = new float[2 * pairs * blocks];
        var target = IO.CacheLines.Start(data.AsSpan(), bytes);
        ref byte o = ref MemoryMarshal.GetReference(target);
        for (int k = 0; k < pairs; k++)
        {
            var (even, odd) = (xs[2 * k], xs[2 * k + 1]);
            ref byte qe = ref Unsafe.As<sbyte, byte>(ref MemoryMarshal.GetReference(even.Q8));
            ref byte qd = ref Unsafe.As<sbyte, byte>(ref MemoryMarshal.GetReference(odd.Q8));
            ref byte ge = ref Unsafe.As<int, byte>(ref MemoryMarshal.GetArrayDataReference(even.Q8GroupSums8));
            ref byte gd = ref Unsafe.As<int, byte>(ref MemoryMarshal.GetArrayDataReference(odd.Q8GroupSums8));
            for (int b = 0; b < blocks; b++)
            {
                nuint at = (nuint)((k * blocks + b) * 128), from = (nuint)(b * 32);
                Vector256.LoadUnsafe(ref qe, from).StoreUnsafe(ref o, at);
                Vector256.LoadUnsafe(ref qd, from).StoreUnsafe(ref o, at + 32);
                Vector256.LoadUnsafe(ref ge, from).StoreUnsafe(ref o, at + 64);
                Vector256.LoadUnsafe(ref gd, from).StoreUnsafe(ref o, at + 96);
                scales[2 * (k * blocks + b)] = even.Q8Scales[b];
                scales[2 * (k * blocks + b) + 1] = odd.Q8Scales[b];
            }
        }
        laidOut = target;
        laidOutScales = scales.AsSpan(0, 2 * pairs * blocks);
    }

    /// <summary>Four rows × one token pair laid out by <see cref="Prepare"/>: results[4·token + row] at
    /// <paramref name="scratch"/>, floats 16..23 (of a 32-float scratch) the scale products. At AVX2: eight sums, four
    /// weight vectors, x and −offset·Σx fit 16 registers.</summary>
    public static void Tile4x2<TOffset>(ref byte unsigned, ref float scales, Span<byte> pair, Span<float> pairScales, int blocks, ref float scratch) where TOffset : struct, IOffset
    {
        ref byte q = ref MemoryMarshal.GetReference(pair);
        ref float s = ref MemoryMarshal.GetReference(pairScales);
        ref float p = ref Unsafe.Add(ref scratch, 16);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
        for (int bl = 0; bl < blocks; bl++)
        {
            var dw = Vector128.LoadUnsafe(ref scales, (nuint)(bl * 4));
            (dw * Vector128.Create(Unsafe.Add(ref s, 2 * bl))).StoreUnsafe(ref p);
            (dw * Vector128.Create(Unsafe.Add(ref s, 2 * bl + 1))).StoreUnsafe(ref p, 4);
            ref byte m = ref Unsafe.Add(ref unsigned, bl * 128);
            var u0 = Vector256.LoadUnsafe(ref m); var u1 = Vector256.LoadUnsafe(ref m, 32);
            var u2 = Vector256.LoadUnsafe(ref m, 64); var u3 = Vector256.LoadUnsafe(ref m, 96);
            nuint at = (nuint)(bl * 128);
            var x = Vector256.LoadUnsafe(ref q, at).AsSByte();
            var start = TOffset.Start(Vector256.LoadUnsafe(ref q, at + 64).AsInt32());
            a0 += Vector256.ConvertToSingle(IntegerDot.GroupsUnsigned(u0, x, start)) * Vector256.Create(Unsafe.Add(ref p, 0));
            a1 += Vector256.ConvertToSingle(IntegerDot.GroupsUnsigned(u1, x, start)) * Vector256.Create(Unsafe.Add(ref p, 1));
            a2 += Vector256.ConvertToSingle(IntegerDot.GroupsUnsigned(u2, x, start)) * Vector256.Create(Unsafe.Add(ref p, 2));
            a3 += Vector256.ConvertToSingle(IntegerDot.GroupsUnsigned(u3, x, start)) * Vector256.Create(Unsafe.Add(ref p, 3));
            x = Vector256.LoadUnsafe(ref q, at + 32).AsSByte();
            start = TOffset.Start(Vector256.LoadUnsafe(ref q, at + 96).AsInt32());
            b0 += Vector256.ConvertToSingle(IntegerDot.GroupsUnsigned(u0, x, start)) * Vector256.Create(Unsafe.Add(ref p, 4));
            b1 += Vector256.ConvertToSingle(IntegerDot.GroupsUnsigned(u1, x, start)) * Vector256.Create(Unsafe.Add(ref p, 5));
            b2 += Vector256.ConvertToSingle(IntegerDot.GroupsUnsigned(u2, x, start)) * Vector256.Create(Unsafe.Add(ref p, 6));
            b3 += Vector256.ConvertToSingle(IntegerDot.GroupsUnsigned(u3, x, start)) * Vector256.Create(Unsafe.Add(ref p, 7));
        }
        IntegerDot.Fold4(a0, a1, a2, a3).StoreUnsafe(ref scratch);
        IntegerDot.Fold4(b0, b1, b2, b3).StoreUnsafe(ref scratch, 4);
    }
}
