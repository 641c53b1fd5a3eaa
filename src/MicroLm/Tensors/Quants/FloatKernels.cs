using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using MicroLm.Math;

namespace MicroLm.Tensors.Quants;

/// <summary>When the float kernels decode four rows per pass (256- and 512-bit paths).</summary>
internal static class FloatRows
{
    /// <summary>Measured: on 4 KB rows (2048 F16 values) four row streams ran at half the speed of one (the
    /// rows share L1 sets 4 KB apart); on 1.5 KB rows they were ~10 % faster.</summary>
    public const int MaxFourRowBytes = 2048;


    /// <summary>Prefill's four rows (as floats) share L1 with the token being read: at most half of a 32 KB L1.</summary>
    public const int MaxManyRowsBytes = 16384;

    /// <summary>output[t·stride + rowIndex + k] = dot(row k, token t) for four float rows, each in Dot's order.</summary>
    public static void DotManyRows4(ReadOnlySpan<float> w0, ReadOnlySpan<float> w1, ReadOnlySpan<float> w2, ReadOnlySpan<float> w3,
        Activation[] xs, int count, Span<float> output, int stride, int rowIndex)
    {
        for (int t = 0; t < count; t++)
            Kernels.Dot4(xs[t].Span, w0, w1, w2, w3, output.Slice(t * stride + rowIndex, 4));
    }
}

internal sealed partial class F32Kernel : RowKernel
{
    public static readonly F32Kernel Instance = new();

    public override void Dequantize(ReadOnlySpan<byte> row, Span<float> output) =>
        MemoryMarshal.Cast<byte, float>(row)[..output.Length].CopyTo(output);

    public override float Dot(ReadOnlySpan<byte> row, Activation x) =>
        Kernels.Dot(MemoryMarshal.Cast<byte, float>(row), x.Values.AsSpan(0, x.Length));

    protected override void Dot4(ReadOnlySpan<byte> row, Activation a, Activation b, Activation c, Activation d, Span<float> results) =>
        Kernels.Dot4(MemoryMarshal.Cast<byte, float>(row), a.Span, b.Span, c.Span, d.Span, results);

    /// <summary>Dot4Rows on 256-bit vectors: each row's 16 lanes are two accumulators, as in Kernels.Dot's 256-bit path.</summary>
    private static void Dot4Rows256(ReadOnlySpan<byte> rows, int rowBytes, Activation x, Span<float> results)
    {
        int n = x.Length;
        ref byte start = ref MemoryMarshal.GetReference(rows);
        ref float w0 = ref Unsafe.As<byte, float>(ref start);
        ref float w1 = ref Unsafe.Add(ref w0, rowBytes / 4);
        ref float w2 = ref Unsafe.Add(ref w1, rowBytes / 4);
        ref float w3 = ref Unsafe.Add(ref w2, rowBytes / 4);
        ref float xv = ref MemoryMarshal.GetArrayDataReference(x.Values);
        int ahead = 8 * rowBytes;
        var a0 = Vector256<float>.Zero; var b0 = Vector256<float>.Zero; var a1 = Vector256<float>.Zero; var b1 = Vector256<float>.Zero;
        var a2 = Vector256<float>.Zero; var b2 = Vector256<float>.Zero; var a3 = Vector256<float>.Zero; var b3 = Vector256<float>.Zero;
        for (int i = 0; i < n; i += 16)
        {
            int p = ahead + 16 * i;
            IntegerDot.Prefetch(ref start, p); IntegerDot.Prefetch(ref start, p + 64);
            IntegerDot.Prefetch(ref start, p + 128); IntegerDot.Prefetch(ref start, p + 192);
            var xa = Vector256.LoadUnsafe(ref xv, (nuint)i);
            var xb = Vector256.LoadUnsafe(ref xv, (nuint)i + 8);
            a0 += Vector256.LoadUnsafe(ref w0, (nuint)i) * xa; b0 += Vector256.LoadUnsafe(ref w0, (nuint)i + 8) * xb;
            a1 += Vector256.LoadUnsafe(ref w1, (nuint)i) * xa; b1 += Vector256.LoadUnsafe(ref w1, (nuint)i + 8) * xb;
            a2 += Vector256.LoadUnsafe(ref w2, (nuint)i) * xa; b2 += Vector256.LoadUnsafe(ref w2, (nuint)i + 8) * xb;
            a3 += Vector256.LoadUnsafe(ref w3, (nuint)i) * xa; b3 += Vector256.LoadUnsafe(ref w3, (nuint)i + 8) * xb;
        }
        Kernels.ReduceLanes4(Vector512.Create(a0, b0), Vector512.Create(a1, b1), Vector512.Create(a2, b2), Vector512.Create(a3, b3), results);
    }

    /// <summary>Prefill, four rows per pass over the tokens: a token's dots with the four rows are
    /// <see cref="Kernels.Dot4"/> of the token with the rows (a product's bits do not depend on the order of
    /// its factors), so each equals Dot. The four rows must stay in L1 (<see cref="FloatRows.MaxManyRowsBytes"/>).</summary>
    public override bool DotManyRows4(ReadOnlySpan<byte> rows, int rowBytes, Activation[] xs, int count, Span<float> output, int stride, int rowIndex)
    {
        if (Kernels.VectorBits < 256 || 4 * rowBytes > FloatRows.MaxManyRowsBytes) return false;
        int n = xs[0].Length;
        var w = MemoryMarshal.Cast<byte, float>(rows);
        FloatRows.DotManyRows4(w[..n], w.Slice(rowBytes / 4, n), w.Slice(rowBytes / 2, n), w.Slice(3 * rowBytes / 4, n), xs, count, output, stride, rowIndex);
        return true;
    }

    /// <summary>Decode over four short rows at once (512-bit path), prefetching the rows two passes ahead:
    /// four independent 16-lane sums, each with Dot's operations, so the bits are Dot's. Long rows
    /// stream one at a time (see <see cref="FloatRows.MaxFourRowBytes"/>).</summary>
    public override bool PrefersFourRows(int rowBytes) => Kernels.VectorBits >= 256 && rowBytes <= FloatRows.MaxFourRowBytes;

    public override void Dot4Rows(ReadOnlySpan<byte> rows, int rowBytes, Activation x, Span<float> results)
    {
        int n = x.Length;
        if (Kernels.VectorBits < 256 || (n & 15) != 0) { base.Dot4Rows(rows, rowBytes, x, results); return; }
        if (Kernels.VectorBits < 512) { Dot4Rows256(rows, rowBytes, x, results); return; }
        ref byte start = ref MemoryMarshal.GetReference(rows);
        ref float w0 = ref Unsafe.As<byte, float>(ref start);
        ref float w1 = ref Unsafe.Add(ref w0, rowBytes / 4);
        ref float w2 = ref Unsafe.Add(ref w1, rowBytes / 4);
        ref float w3 = ref Unsafe.Add(ref w2, rowBytes / 4);
        ref float xv = ref MemoryMarshal.GetArrayDataReference(x.Values);
        int ahead = 8 * rowBytes;
        var a0 = Vector512<float>.Zero; var a1 = Vector512<float>.Zero; var a2 = Vector512<float>.Zero; var a3 = Vector512<float>.Zero;
        for (int i = 0; i < n; i += 16)
        {
            // A step reads 4 × 64 bytes; the group two passes ahead is fetched at the same pace.
            int p = ahead + 16 * i;
            IntegerDot.Prefetch(ref start, p); IntegerDot.Prefetch(ref start, p + 64);
            IntegerDot.Prefetch(ref start, p + 128); IntegerDot.Prefetch(ref start, p + 192);
            var xs = Vector512.LoadUnsafe(ref xv, (nuint)i);
            a0 += Vector512.LoadUnsafe(ref w0, (nuint)i) * xs;
            a1 += Vector512.LoadUnsafe(ref w1, (nuint)i) * xs;
            a2 += Vector512.LoadUnsafe(ref w2, (nuint)i) * xs;
            a3 += Vector512.LoadUnsafe(ref w3, (nuint)i) * xs;
        }
        Kernels.ReduceLanes4(a0, a1, a2, a3, results);
    }
}

/// <summary>IEEE half → float is exact, so a 64K-entry table gives the same bits as any conversion instruction.</summary>
internal sealed partial class F16Kernel : RowKernel
{
    public static readonly F16Kernel Instance = new();
    internal static readonly float[] HalfToFloat = BuildTable();

    private static float[] BuildTable()
    {
        var t = new float[65536];
        for (int i = 0; i < t.Length; i++) t[i] = (float)BitConverter.UInt16BitsToHalf((ushort)i);
        return t;
    }

    public override void Dequantize(ReadOnlySpan<byte> row, Span<float> output)
    {
        var h = MemoryMarshal.Cast<byte, ushort>(row);
        var table = HalfToFloat;
        for (int i = 0; i < output.Length; i++) output[i] = table[h[i]];
    }

    /// <summary>Converts in registers (exact: see <see cref="ToSingle(Vector256{uint})"/>) and accumulates in
    /// the 16 lanes of <see cref="Kernels"/>, so the bits equal an F32 dot of the converted row.</summary>
    public override float Dot(ReadOnlySpan<byte> row, Activation x)
    {
        int n = x.Length, full = n & ~15, i = 0;
        ref ushort h = ref Unsafe.As<byte, ushort>(ref MemoryMarshal.GetReference(row));
        ref float xv = ref MemoryMarshal.GetArrayDataReference(x.Values);
        Span<float> lanes = stackalloc float[Kernels.Lanes];
        ref float l = ref MemoryMarshal.GetReference(lanes);
        int bits = Kernels.VectorBits;
        if (bits >= 512)
        {
            var acc = Vector512<float>.Zero;
            for (; i < full; i += 16)
                acc += LoadSingle512(ref h, i) * Vector512.LoadUnsafe(ref xv, (nuint)i);
            acc.StoreUnsafe(ref l);
        }
        else if (bits >= 256)
        {
            var acc0 = Vector256<float>.Zero; var acc1 = Vector256<float>.Zero;
            for (; i < full; i += 16)
            {
                acc0 += LoadSingle256(ref h, i) * Vector256.LoadUnsafe(ref xv, (nuint)i);
                acc1 += LoadSingle256(ref h, i + 8) * Vector256.LoadUnsafe(ref xv, (nuint)i + 8);
            }
            acc0.StoreUnsafe(ref l); acc1.StoreUnsafe(ref l, 8);
        }
        else if (bits >= 128)
        {
            var acc0 = Vector128<float>.Zero; var acc1 = Vector128<float>.Zero;
            var acc2 = Vector128<float>.Zero; var acc3 = Vector128<float>.Zero;
            for (; i < full; i += 16)
            {
                var (a, b) = Vector128.Widen(Vector128.LoadUnsafe(ref h, (nuint)i));
                var (c, d) = Vector128.Widen(Vector128.LoadUnsafe(ref h, (nuint)i + 8));
                acc0 += ToSingle(a) * Vector128.LoadUnsafe(ref xv, (nuint)i);
                acc1 += ToSingle(b) * Vector128.LoadUnsafe(ref xv, (nuint)i + 4);
                acc2 += ToSingle(c) * Vector128.LoadUnsafe(ref xv, (nuint)i + 8);
                acc3 += ToSingle(d) * Vector128.LoadUnsafe(ref xv, (nuint)i + 12);
            }
            acc0.StoreUnsafe(ref l); acc1.StoreUnsafe(ref l, 4); acc2.StoreUnsafe(ref l, 8); acc3.StoreUnsafe(ref l, 12);
        }
        else lanes.Clear();
        var table = HalfToFloat;
        for (; i < n; i++) Unsafe.Add(ref l, i & 15) += table[Unsafe.Add(ref h, i)] * Unsafe.Add(ref xv, i);
        return Kernels.ReduceLanes(lanes);
    }

    /// <summary>Decode over four rows at once (512-bit path): four independent 16-lane sums keep the adder
    /// busy where one row's sum waits on its previous add, and the rows two passes ahead are prefetched.
    /// Each row's operations are Dot's, so the bits are the same.</summary>
    public override bool PrefersFourRows(int rowBytes) => Kernels.VectorBits >= 256 && rowBytes <= FloatRows.MaxFourRowBytes;

    public override void Dot4Rows(ReadOnlySpan<byte> rows, int rowBytes, Activation x, Span<float> results)
    {
        int n = x.Length;
        if (Kernels.VectorBits < 256 || (n & 15) != 0) { base.Dot4Rows(rows, rowBytes, x, results); return; }
        if (Kernels.VectorBits < 512) { Dot4Rows256(rows, rowBytes, x, results); return; }
        ref byte start = ref MemoryMarshal.GetReference(rows);
        ref ushort h0 = ref Unsafe.As<byte, ushort>(ref start);
        ref ushort h1 = ref Unsafe.Add(ref h0, rowBytes / 2);
        ref ushort h2 = ref Unsafe.Add(ref h1, rowBytes / 2);
        ref ushort h3 = ref Unsafe.Add(ref h2, rowBytes / 2);
        ref float xv = ref MemoryMarshal.GetArrayDataReference(x.Values);
        int ahead = 8 * rowBytes;
        var a0 = Vector512<float>.Zero; var a1 = Vector512<float>.Zero; var a2 = Vector512<float>.Zero; var a3 = Vector512<float>.Zero;
        for (int i = 0; i < n; i += 16)
        {
            // A step reads 4 × 32 bytes; the group two passes ahead is fetched at the same pace.
            IntegerDot.Prefetch(ref start, ahead + 8 * i);
            IntegerDot.Prefetch(ref start, ahead + 8 * i + 64);
            var xs = Vector512.LoadUnsafe(ref xv, (nuint)i);
            a0 += LoadSingle512(ref h0, i) * xs;
            a1 += LoadSingle512(ref h1, i) * xs;
            a2 += LoadSingle512(ref h2, i) * xs;
            a3 += LoadSingle512(ref h3, i) * xs;
        }
        Kernels.ReduceLanes4(a0, a1, a2, a3, results);
    }

    /// <summary>Prefill, four rows per pass: the rows are converted once (exactly) and dotted with every token
    /// as F32 (<see cref="FloatRows.DotManyRows4"/>), which has this kernel's bits.</summary>
    public override bool DotManyRows4(ReadOnlySpan<byte> rows, int rowBytes, Activation[] xs, int count, Span<float> output, int stride, int rowIndex)
    {
        int n = xs[0].Length;
        if (Kernels.VectorBits < 256 || 16 * n > FloatRows.MaxManyRowsBytes) return false;
        Span<float> w = stackalloc float[4 * n];
        var h = MemoryMarshal.Cast<byte, ushort>(rows);
        for (int k = 0; k < 4; k++) ToSingle(h.Slice(k * rowBytes / 2, n), w.Slice(k * n, n));
        FloatRows.DotManyRows4(w[..n], w.Slice(n, n), w.Slice(2 * n, n), w.Slice(3 * n, n), xs, count, output, stride, rowIndex);
        return true;
    }

    /// <summary>Dot4Rows on 256-bit vectors: each row's 16 lanes are two accumulators, as in Dot's 256-bit path.</summary>
    private static void Dot4Rows256(ReadOnlySpan<byte> rows, int rowBytes, Activation x, Span<float> results)
    {
        int n = x.Length;
        ref byte start = ref MemoryMarshal.GetReference(rows);
        ref ushort h0 = ref Unsafe.As<byte, ushort>(ref start);
        ref ushort h1 = ref Unsafe.Add(ref h0, rowBytes / 2);
        ref ushort h2 = ref Unsafe.Add(ref h1, rowBytes / 2);
        ref ushort h3 = ref Unsafe.Add(ref h2, rowBytes / 2);
        ref float xv = ref MemoryMarshal.GetArrayDataReference(x.Values);
        int ahead = 8 * rowBytes;
        var a0 = Vector256<float>.Zero; var b0 = Vector256<float>.Zero; var a1 = Vector256<float>.Zero; var b1 = Vector256<float>.Zero;
        var a2 = Vector256<float>.Zero; var b2 = Vector256<float>.Zero; var a3 = Vector256<float>.Zero; var b3 = Vector256<float>.Zero;
        for (int i = 0; i < n; i += 16)
        {
            IntegerDot.Prefetch(ref start, ahead + 8 * i);
            IntegerDot.Prefetch(ref start, ahead + 8 * i + 64);
            var xa = Vector256.LoadUnsafe(ref xv, (nuint)i);
            var xb = Vector256.LoadUnsafe(ref xv, (nuint)i + 8);
            a0 += LoadSingle256(ref h0, i) * xa; b0 += LoadSingle256(ref h0, i + 8) * xb;
            a1 += LoadSingle256(ref h1, i) * xa; b1 += LoadSingle256(ref h1, i + 8) * xb;
            a2 += LoadSingle256(ref h2, i) * xa; b2 += LoadSingle256(ref h2, i + 8) * xb;
            a3 += LoadSingle256(ref h3, i) * xa; b3 += LoadSingle256(ref h3, i + 8) * xb;
        }
        Kernels.ReduceLanes4(Vector512.Create(a0, b0), Vector512.Create(a1, b1), Vector512.Create(a2, b2), Vector512.Create(a3, b3), results);
    }

    /// <summary>Prefill: the row is converted once (exactly) and dotted with every token as F32, which
    /// has this kernel's bits.</summary>
    public override void DotMany(ReadOnlySpan<byte> row, Activation[] xs, int count, Span<float> output, int stride, int rowIndex)
    {
        int n = xs[0].Length;
        if (count < 2 || n > 16384) { base.DotMany(row, xs, count, output, stride, rowIndex); return; }
        Span<float> w = stackalloc float[n];
        ToSingle(MemoryMarshal.Cast<byte, ushort>(row)[..n], w);
        Span<float> four = stackalloc float[4];
        int t = 0;
        for (; t + 4 <= count; t += 4)
        {
            Kernels.Dot4(w, xs[t].Span, xs[t + 1].Span, xs[t + 2].Span, xs[t + 3].Span, four);
            for (int k = 0; k < 4; k++) output[(t + k) * stride + rowIndex] = four[k];
        }
        for (; t < count; t++) output[t * stride + rowIndex] = Kernels.Dot(w, xs[t].Span);
    }

    internal static void ToSingle(ReadOnlySpan<ushort> h, Span<float> output)
    {
        int i = 0;
        if (Kernels.VectorBits >= 512)
            for (; i + 16 <= h.Length; i += 16)
                ToSingle(Vector512.WidenLower(Vector256.Create(h.Slice(i, 16)).ToVector512Unsafe())).CopyTo(output[i..]);
        if (Vector256.IsHardwareAccelerated)
            for (; i + 16 <= h.Length; i += 16)
            {
                var (lo, hi) = Vector256.Widen(Vector256.Create(h.Slice(i, 16)));
                ToSingle(lo).CopyTo(output[i..]);
                ToSingle(hi).CopyTo(output[(i + 8)..]);
            }
        var table = HalfToFloat;
        for (; i < h.Length; i++) output[i] = table[h[i]];
    }

    // Half → float by bits, for finite halves (Validate refuses tensors holding infinities or NaNs):
    // shifted 16 left and 3 right arithmetically, the half's sign lands in bit 31 (copies in 28–30, masked
    // off) and its 15 magnitude bits in bits 13–27, which read as a float 2^-112 times the half's value,
    // for normal and subnormal halves alike; one multiply by 2^112 (exact) scales it. Equals the IEEE
    // conversion (a test checks all 63,488 finite halves).
    private static readonly float TwoPow112 = BitConverter.Int32BitsToSingle(0x77800000);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> ToSingle(Vector512<uint> h)
    {
        var v = Vector512.ShiftRightArithmetic(Vector512.ShiftLeft(h, 16).AsInt32(), 3) & Vector512.Create(unchecked((int)0x8FFFFFFF));
        return v.AsSingle() * Vector512.Create(TwoPow112);
    }

    /// <summary>16 halves at h[i] as floats, the same conversion from halves sign-extended to 32 bits: a
    /// shift by 13 puts the sign in bit 31 (copies in 28–30, masked off) and the magnitude in bits 13–27.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> LoadSingle512(ref ushort h, int i)
    {
        var wide = Vector512.WidenLower(Vector256.LoadUnsafe(ref Unsafe.As<ushort, short>(ref h), (nuint)i).ToVector512Unsafe());
        var v = Vector512.ShiftLeft(wide, 13) & Vector512.Create(unchecked((int)0x8FFFFFFF));
        return v.AsSingle() * Vector512.Create(TwoPow112);
    }

    /// <summary>8 halves at h[i] as floats (LoadSingle512's conversion: sign-extending load, shift by 13).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> LoadSingle256(ref ushort h, int i)
    {
        var wide = Vector256.WidenLower(Vector128.LoadUnsafe(ref Unsafe.As<ushort, short>(ref h), (nuint)i).ToVector256Unsafe());
        var v = Vector256.ShiftLeft(wide, 13) & Vector256.Create(unchecked((int)0x8FFFFFFF));
        return v.AsSingle() * Vector256.Create(TwoPow112);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> ToSingle(Vector256<uint> h)
    {
        var v = Vector256.ShiftRightArithmetic(Vector256.ShiftLeft(h, 16).AsInt32(), 3) & Vector256.Create(unchecked((int)0x8FFFFFFF));
        return v.AsSingle() * Vector256.Create(TwoPow112);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector128<float> ToSingle(Vector128<uint> h)
    {
        var v = Vector128.ShiftRightArithmetic(Vector128.ShiftLeft(h, 16).AsInt32(), 3) & Vector128.Create(unchecked((int)0x8FFFFFFF));
        return v.AsSingle() * Vector128.Create(TwoPow112);
    }

    /// <summary>F16 weights must be finite: the fast conversion above assumes it, and a model holding
    /// infinities or NaNs cannot give meaningful logits anyway.</summary>
    public override void Validate(string tensor, ReadOnlySpan<byte> data)
    {
        var h = MemoryMarshal.Cast<byte, ushort>(data);
        int at = h.IndexOfAnyInRange((ushort)0x7C00, (ushort)0x7FFF);
        if (at < 0) at = h.IndexOfAnyInRange((ushort)0xFC00, (ushort)0xFFFF);
        if (at >= 0) throw new MicroLmException($"tensor '{tensor}' holds an infinity or NaN (F16 value 0x{h[at]:X4} at element {at})");
    }
}

internal sealed partial class BF16Kernel : RowKernel
{
    public static readonly BF16Kernel Instance = new();

    public override void Dequantize(ReadOnlySpan<byte> row, Span<float> output)
    {
        for (int i = 0; i < output.Length; i++)
            output[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(row[(2 * i)..]) << 16);
    }

    public override float Dot(ReadOnlySpan<byte> row, Activation x) => DotByDequantizing(row, x, 1, 2);
}
