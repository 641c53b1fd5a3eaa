using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using MicroLm.Math;

namespace MicroLm.Tensors.Quants;

/// <summary>When the float kernels decode four rows per pass (256- and 512-bit paths).</summary>
internal static class FloatRows
{
    /// <summary>Measured: on 4 KB rows (2048 F16 values) four row streams ran at half the speed of one (the
    /// rows share L1 sets 4 KB apart); on 1.5 KB rows they were ~10 % faster.</summary>
    public const int MaxFourRowBytes = 2048;

    /// <summary>Whether every row of a run starts on a 64-byte line (the run's start and the row length both multiples of
    /// 64), so a 512-bit load of F32 values never straddles two lines. A GGUF file aligns tensors to 32 bytes, so its
    /// rows often are not; off a line, F32 decode takes the 256-bit pass (same lanes, same bits).</summary>
    public static unsafe bool OnLines(byte* rows, nint rowBytes) => (((nint)rows | rowBytes) & 63) == 0;


    /// <summary>Largest four rows (as floats) that prefill's four-row tile takes. They are read again for every pair of
    /// tokens, from L2 once past L1: measured (`--prefill-kernels`, CPU time) that is still far faster than one row at a
    /// time — 110M shape (2048-float rows) 23.6 → 29.5 GMAC/s at 512 bits, a 5632-wide FFN 22.2 → 28.6. 128 KB (rows of
    /// 8192 floats, past every micro model's widths) stays within any L2, and F16's converted copy lives on the stack.</summary>
    public const int MaxManyRowsBytes = 131072;

    /// <summary>Decode over four consecutive rows of a float type (256- and 512-bit paths), prefetching the rows
    /// two passes ahead: four independent 16-lane sums, each with the type's Dot operations (one 512-bit or two
    /// 256-bit accumulators, term i in lane i mod 16), folded by <see cref="Kernels.ReduceLanes4"/>, so each
    /// result has Dot's bits. The caller checks the width (≥ 256) and that the row length is a multiple of 16.</summary>
    public static void Dot4Rows<TValues>(ReadOnlySpan<byte> rows, int rowBytes, Activation x, Span<float> results)
        where TValues : struct, IFloatValues
    {
        int n = x.Length;
        ref byte w0 = ref MemoryMarshal.GetReference(rows);
        ref byte w1 = ref Unsafe.Add(ref w0, rowBytes);
        ref byte w2 = ref Unsafe.Add(ref w1, rowBytes);
        ref byte w3 = ref Unsafe.Add(ref w2, rowBytes);
        ref float xv = ref MemoryMarshal.GetReference(TValues.Inputs(x));
        int ahead = 8 * rowBytes;
        if (Kernels.VectorBits < 512) { Dot4Rows256<TValues>(ref w0, rowBytes, x, results); return; }
        {
            var a0 = Vector512<float>.Zero; var a1 = Vector512<float>.Zero; var a2 = Vector512<float>.Zero; var a3 = Vector512<float>.Zero;
            for (int i = 0; i < n; i += 16)
            {
                PrefetchStep<TValues>(ref w0, ahead, i);
                var xs = Vector512.LoadUnsafe(ref xv, (nuint)i);
                a0 += TValues.Load16(ref w0, i) * xs;
                a1 += TValues.Load16(ref w1, i) * xs;
                a2 += TValues.Load16(ref w2, i) * xs;
                a3 += TValues.Load16(ref w3, i) * xs;
            }
            Kernels.ReduceLanes4(a0, a1, a2, a3, results);
        }
    }

    /// <summary>F32 decode of rows [0, 4·<paramref name="quarter"/>) at <paramref name="rows"/> (pinned) as four streams a
    /// quarter of the run apart: pass g dots rows g, g + q, g + 2q and g + 3q (q = <paramref name="quarter"/>) with
    /// <paramref name="x"/> (n values, a multiple of 16) and writes output[g + k·q]. Each row is Dot's pass (term i in lane i
    /// mod 16: one 512-bit accumulator where the rows are on 64-byte lines at 512 bits, else two 256-bit ones), folded by
    /// <see cref="Kernels.ReduceLanes4"/>, so every result has Dot's bits. Four streams far apart keep four hardware
    /// prefetch streams busy where one row at a time ran one, and four adjacent rows (a few KB from each other) confused
    /// them: measured in docs/performance.md. The caller checks the width (≥ 256) and the bounds.</summary>
    public static unsafe void DotRowQuarters<TValues>(byte* rows, nint rowBytes, float* x, nuint n, float* output, nint quarter)
        where TValues : struct, IFloatValues
    {
        if (Kernels.VectorBits < 512 || !OnLines(rows, rowBytes)) { DotRowQuarters256<TValues>(rows, rowBytes, x, n, output, quarter); return; }
        nuint step = (nuint)(16 * TValues.Size);
        nint apart = quarter * rowBytes;
        float* four = stackalloc float[4];
        for (nint g = 0; g < quarter; g++)
        {
            byte* w0 = rows + g * rowBytes, w1 = w0 + apart, w2 = w1 + apart, w3 = w2 + apart;
            var a0 = Vector512<float>.Zero; var a1 = Vector512<float>.Zero; var a2 = Vector512<float>.Zero; var a3 = Vector512<float>.Zero;
            nuint o = 0;
            for (nuint i = 0; i < n; i += 16, o += step)
            {
                var xs = Vector512.Load(x + i);
                a0 += TValues.Load16(ref *(w0 + o), 0) * xs;
                a1 += TValues.Load16(ref *(w1 + o), 0) * xs;
                a2 += TValues.Load16(ref *(w2 + o), 0) * xs;
                a3 += TValues.Load16(ref *(w3 + o), 0) * xs;
            }
            Kernels.ReduceLanes4(a0, a1, a2, a3, new Span<float>(four, 4));
            Scatter(four, output + g, quarter);
        }
    }

    /// <summary>output[k·q] = four[k]: a pass's four results to their quarters.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Scatter(float* four, float* output, nint q)
    {
        output[0] = four[0]; output[q] = four[1]; output[2 * q] = four[2]; output[3 * q] = four[3];
    }

    /// <summary>Decode of rows too long for four per pass, two per pass at 512 bits (F16 over its scaled form): each row is
    /// <see cref="Kernels.Dot"/>'s pass (one 512-bit accumulator, term i in lane i mod 16, the documented fold), so the
    /// same bits; the pair two passes ahead is prefetched at two rows' pace. At AVX2 F16 takes the pair form's four-row
    /// pass. The caller checks the width, n (a positive multiple of 16) and the bounds.</summary>
    public static unsafe void DotRowPairs<TValues>(byte* rows, nint rowBytes, float* x, nuint n, float* output, nint pairs)
        where TValues : struct, IFloatValues
    {
        Span<float> four = stackalloc float[4];
        nuint step = (nuint)(16 * TValues.Size);
        for (nint p = 0; p < pairs; p++, rows += 2 * rowBytes, output += 2)
        {
            byte* w0 = rows, w1 = rows + rowBytes, ahead = rows + 4 * rowBytes;
            var a0 = Vector512<float>.Zero; var a1 = Vector512<float>.Zero;
            nuint o = 0;
            for (nuint i = 0; i < n; i += 16, o += step, ahead += 2 * step)
            {
                IntegerDot.Prefetch(ahead);
                if (TValues.Size == 4) IntegerDot.Prefetch(ahead + 64);
                var xs = Vector512.Load(x + i);
                a0 += TValues.Load16(ref *(w0 + o), 0) * xs;
                a1 += TValues.Load16(ref *(w1 + o), 0) * xs;
            }
            Kernels.ReduceLanes4(a0, a1, a0, a1, four);
            output[0] = four[0]; output[1] = four[1];
        }
    }

    /// <summary><see cref="DotRowQuarters{TValues}"/> on 256-bit vectors (a method of its own: sharing one with the
    /// 512-bit loop made the JIT's 256-bit loop slower).</summary>
    private static unsafe void DotRowQuarters256<TValues>(byte* rows, nint rowBytes, float* x, nuint n, float* output, nint quarter)
        where TValues : struct, IFloatValues
    {
        nuint step = (nuint)(16 * TValues.Size), half = (nuint)(8 * TValues.Size);
        nint apart = quarter * rowBytes;
        float* four = stackalloc float[4];
        for (nint g = 0; g < quarter; g++)
        {
            byte* w0 = rows + g * rowBytes, w1 = w0 + apart, w2 = w1 + apart, w3 = w2 + apart;
            var l0 = Vector256<float>.Zero; var h0 = Vector256<float>.Zero; var l1 = Vector256<float>.Zero; var h1 = Vector256<float>.Zero;
            var l2 = Vector256<float>.Zero; var h2 = Vector256<float>.Zero; var l3 = Vector256<float>.Zero; var h3 = Vector256<float>.Zero;
            nuint o = 0;
            for (nuint i = 0; i < n; i += 16, o += step)
            {
                var xa = Vector256.Load(x + i);
                var xb = Vector256.Load(x + i + 8);
                l0 += TValues.Load8(ref *(w0 + o), 0) * xa; h0 += TValues.Load8(ref *(w0 + o + half), 0) * xb;
                l1 += TValues.Load8(ref *(w1 + o), 0) * xa; h1 += TValues.Load8(ref *(w1 + o + half), 0) * xb;
                l2 += TValues.Load8(ref *(w2 + o), 0) * xa; h2 += TValues.Load8(ref *(w2 + o + half), 0) * xb;
                l3 += TValues.Load8(ref *(w3 + o), 0) * xa; h3 += TValues.Load8(ref *(w3 + o + half), 0) * xb;
            }
            Kernels.ReduceLanes4(l0, h0, l1, h1, l2, h2, l3, h3, new Span<float>(four, 4));
            Scatter(four, output + g, quarter);
        }
    }

    /// <summary><see cref="Dot4Rows{TValues}"/> on 256-bit vectors: each row's 16 lanes are two accumulators (a
    /// method of its own: sharing one with the 512-bit loop made the JIT's 256-bit loop several times slower).</summary>
    private static void Dot4Rows256<TValues>(ref byte w0, int rowBytes, Activation x, Span<float> results) where TValues : struct, IFloatValues
    {
        int n = x.Length;
        ref byte w1 = ref Unsafe.Add(ref w0, rowBytes);
        ref byte w2 = ref Unsafe.Add(ref w1, rowBytes);
        ref byte w3 = ref Unsafe.Add(ref w2, rowBytes);
        ref float xv = ref MemoryMarshal.GetReference(TValues.Inputs(x));
        int ahead = 8 * rowBytes;
        var l0 = Vector256<float>.Zero; var h0 = Vector256<float>.Zero; var l1 = Vector256<float>.Zero; var h1 = Vector256<float>.Zero;
        var l2 = Vector256<float>.Zero; var h2 = Vector256<float>.Zero; var l3 = Vector256<float>.Zero; var h3 = Vector256<float>.Zero;
        for (int i = 0; i < n; i += 16)
        {
            PrefetchStep<TValues>(ref w0, ahead, i);
            var xa = Vector256.LoadUnsafe(ref xv, (nuint)i);
            var xb = Vector256.LoadUnsafe(ref xv, (nuint)i + 8);
            l0 += TValues.Load8(ref w0, i) * xa; h0 += TValues.Load8(ref w0, i + 8) * xb;
            l1 += TValues.Load8(ref w1, i) * xa; h1 += TValues.Load8(ref w1, i + 8) * xb;
            l2 += TValues.Load8(ref w2, i) * xa; h2 += TValues.Load8(ref w2, i + 8) * xb;
            l3 += TValues.Load8(ref w3, i) * xa; h3 += TValues.Load8(ref w3, i + 8) * xb;
        }
        Kernels.ReduceLanes4(l0, h0, l1, h1, l2, h2, l3, h3, results);
    }

    /// <summary>A step reads 16 values of four rows (4 × 16 × size bytes: one cache line per byte of value size);
    /// the group two passes ahead is fetched at the same pace.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchStep<TValues>(ref byte rows, int ahead, int i) where TValues : struct, IFloatValues
    {
        int p = ahead + 4 * TValues.Size * i;
        IntegerDot.Prefetch(ref rows, p);
        IntegerDot.Prefetch(ref rows, p + 64);
        if (TValues.Size == 4)
        {
            IntegerDot.Prefetch(ref rows, p + 128);
            IntegerDot.Prefetch(ref rows, p + 192);
        }
    }

    /// <summary>output[t·stride + rowIndex + k] = dot(row k, token t) for four float rows, each in Dot's order: four
    /// tokens at a time where the 512-bit tile runs (8 loads per 16 products: `--prefill-kernels` CPU time, 110M shape,
    /// 28.5 → 39.3 GMAC/s against pairs), then pairs, then one.</summary>
    public static void DotManyRows4(ReadOnlySpan<float> w0, ReadOnlySpan<float> w1, ReadOnlySpan<float> w2, ReadOnlySpan<float> w3,
        Activation[] xs, int count, Span<float> output, int stride, int rowIndex)
    {
        Span<float> eight = stackalloc float[16];
        int t = 0;
        for (; t + 4 <= count; t += 4)
        {
            if (!Kernels.Dot4Rows4Tokens(w0, w1, w2, w3, xs[t].Values, xs[t + 1].Values, xs[t + 2].Values, xs[t + 3].Values, eight)) break;
            for (int j = 0; j < 4; j++) eight.Slice(4 * j, 4).CopyTo(output.Slice((t + j) * stride + rowIndex, 4));
        }
        for (; t + 2 <= count; t += 2)
        {
            Kernels.Dot4Rows2Tokens(w0, w1, w2, w3, xs[t].Values, xs[t + 1].Values, eight);
            var oa = output.Slice(t * stride + rowIndex, 4);
            var ob = output.Slice((t + 1) * stride + rowIndex, 4);
            oa[0] = eight[0]; ob[0] = eight[1]; oa[1] = eight[2]; ob[1] = eight[3];
            oa[2] = eight[4]; ob[2] = eight[5]; oa[3] = eight[6]; ob[3] = eight[7];
        }
        for (; t < count; t++)
            Kernels.Dot4(xs[t].Values, w0, w1, w2, w3, output.Slice(t * stride + rowIndex, 4));
    }
}

/// <summary>How a float row type's stored values load as floats (exactly), for <see cref="FloatRows.Dot4Rows{TValues}"/>.</summary>
internal interface IFloatValues
{
    /// <summary>Bytes per stored value.</summary>
    static abstract int Size { get; }
    /// <summary>Values i..i+15 of the row at <paramref name="row"/>.</summary>
    static abstract Vector512<float> Load16(ref byte row, int i);
    /// <summary>Values i..i+7 of the row at <paramref name="row"/>.</summary>
    static abstract Vector256<float> Load8(ref byte row, int i);
    /// <summary>The activation's values these loads are multiplied with (<see cref="Activation.Values"/>, or a
    /// form made for the type, e.g. <see cref="Activation.HalfScaled"/>).</summary>
    static abstract Span<float> Inputs(Activation x);
}

internal sealed partial class F32Kernel : RowKernel
{
    private struct Values : IFloatValues
    {
        public static int Size => 4;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Load16(ref byte row, int i) => Vector512.LoadUnsafe(ref Unsafe.As<byte, float>(ref row), (nuint)i);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Load8(ref byte row, int i) => Vector256.LoadUnsafe(ref Unsafe.As<byte, float>(ref row), (nuint)i);
        public static Span<float> Inputs(Activation x) => x.Values;
    }

    public static readonly F32Kernel Instance = new();

    public override void Dequantize(ReadOnlySpan<byte> row, Span<float> output) =>
        MemoryMarshal.Cast<byte, float>(row)[..output.Length].CopyTo(output);

    public override float Dot(ReadOnlySpan<byte> row, Activation x) =>
        Kernels.Dot(MemoryMarshal.Cast<byte, float>(row), x.Values);

    protected override void Dot4(ReadOnlySpan<byte> row, Activation a, Activation b, Activation c, Activation d, Span<float> results) =>
        Kernels.Dot4(MemoryMarshal.Cast<byte, float>(row), a.Values, b.Values, c.Values, d.Values, results);

    /// <summary>Prefill, four rows per pass over the tokens: a token's dots with the four rows are
    /// <see cref="Kernels.Dot4"/> of the token with the rows (a product's bits do not depend on the order of
    /// its factors), so each equals Dot. The four rows must stay in L2 (<see cref="FloatRows.MaxManyRowsBytes"/>).</summary>
    public override bool DotManyRows4(ReadOnlySpan<byte> rows, int rowBytes, Activation[] xs, int count, Span<float> output, int stride, int rowIndex)
    {
        if (Kernels.VectorBits < 256 || 4 * rowBytes > FloatRows.MaxManyRowsBytes) return false;
        int n = xs[0].Length;
        var w = MemoryMarshal.Cast<byte, float>(rows);
        FloatRows.DotManyRows4(w[..n], w.Slice(rowBytes / 4, n), w.Slice(rowBytes / 2, n), w.Slice(3 * rowBytes / 4, n), xs, count, output, stride, rowIndex);
        return true;
    }

    /// <summary>Decode of a row range in one call: four row streams a quarter of the range apart
    /// (<see cref="FloatRows.DotRowQuarters{TValues}"/>), the last 0–3 rows one at a time (<see cref="Kernels.Dot"/>).
    /// Every result has Dot's bits.</summary>
    public override unsafe void DecodeRows(ReadOnlySpan<byte> data, int rowBytes, Activation x, Span<float> output, int rowStart, int rowEnd)
    {
        CheckRange(data, rowBytes, output, rowStart, rowEnd);
        int n = x.Length;
        if (Kernels.VectorBits < 256 || (n & 15) != 0 || n == 0 || (long)n * 4 > rowBytes) { base.DecodeRows(data, rowBytes, x, output, rowStart, rowEnd); return; }
        int quarter = (rowEnd - rowStart) / 4;
        if (quarter > 0)
        {
            fixed (byte* w = data)
            fixed (float* xv = x.Values)
            fixed (float* o = output)
                FloatRows.DotRowQuarters<Values>(w + (nint)rowStart * rowBytes, rowBytes, xv, (nuint)n, o + rowStart, quarter);
        }
        ReadOnlySpan<float> xs = x.Values;
        for (int r = rowStart + 4 * quarter; r < rowEnd; r++)
            output[r] = Kernels.Dot(MemoryMarshal.Cast<byte, float>(data.Slice(r * rowBytes, 4 * n)), xs);
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

    /// <summary>F16 decode reads <see cref="Activation.HalfScaled"/> (x·2^112) where it is exact, and at 256 bits and
    /// more its de-interleaved copy <see cref="Activation.HalfPairs"/>; see <see cref="Scaled"/> and <see cref="Pairs"/>.</summary>
    public override bool UsesHalfScaledActivation => true;

    /// <summary>Converts in registers (exact: see <see cref="ToSingle(Vector256{uint})"/>) and accumulates in
    /// the 16 lanes of <see cref="Kernels"/>, so the bits equal an F32 dot of the converted row. With the
    /// activation's scaled form (<see cref="Scaled"/>) each product skips the conversion's ×2^112, same bits; at 256
    /// bits and more that form is read de-interleaved (<see cref="Pairs"/>), same bits again.</summary>
    public override float Dot(ReadOnlySpan<byte> row, Activation x) =>
        x.HalfPairs is { } pairs && Kernels.VectorBits >= 256 ? Pairs.Dot(row, x, pairs)
        : x.HalfScaled is { } scaled ? Dot<Scaled>(row, x, scaled) : Dot<Values>(row, x, x.Values);

    /// <summary><see cref="Dot"/> with the halves loaded by <typeparamref name="TValues"/> and multiplied with
    /// <paramref name="inputs"/> (its <see cref="IFloatValues.Inputs"/>); the tail past the last 16 values is
    /// IEEE half × x (the same products: see <see cref="Scaled"/>).</summary>
    private static float Dot<TValues>(ReadOnlySpan<byte> row, Activation x, Span<float> inputs) where TValues : struct, IHalfValues
    {
        int n = x.Length, full = n & ~15, i = 0;
        ref ushort h = ref Unsafe.As<byte, ushort>(ref MemoryMarshal.GetReference(row));
        ref byte hb = ref MemoryMarshal.GetReference(row);
        ref float xv = ref MemoryMarshal.GetReference(inputs);
        Span<float> lanes = stackalloc float[Kernels.Lanes];
        ref float l = ref MemoryMarshal.GetReference(lanes);
        int bits = Kernels.VectorBits;
        if (bits >= 512)
        {
            var acc = Vector512<float>.Zero;
            for (; i < full; i += 16)
                acc += TValues.Load16(ref hb, i) * Vector512.LoadUnsafe(ref xv, (nuint)i);
            acc.StoreUnsafe(ref l);
        }
        else if (bits >= 256)
        {
            var acc0 = Vector256<float>.Zero; var acc1 = Vector256<float>.Zero;
            for (; i < full; i += 16)
            {
                acc0 += TValues.Load8(ref hb, i) * Vector256.LoadUnsafe(ref xv, (nuint)i);
                acc1 += TValues.Load8(ref hb, i + 8) * Vector256.LoadUnsafe(ref xv, (nuint)i + 8);
            }
            acc0.StoreUnsafe(ref l); acc1.StoreUnsafe(ref l, 8);
        }
        else if (bits >= 128)
        {
            var acc0 = Vector128<float>.Zero; var acc1 = Vector128<float>.Zero;
            var acc2 = Vector128<float>.Zero; var acc3 = Vector128<float>.Zero;
            for (; i < full; i += 16)
            {
                // Sign-extending widen (Load16's conversion): one shift fewer than ToSingle's, e.g. on ARM64.
                var (a, b) = Vector128.Widen(Vector128.LoadUnsafe(ref Unsafe.As<byte, short>(ref hb), (nuint)i));
                var (c, d) = Vector128.Widen(Vector128.LoadUnsafe(ref Unsafe.As<byte, short>(ref hb), (nuint)i + 8));
                acc0 += TValues.FromSignExtended(a) * Vector128.LoadUnsafe(ref xv, (nuint)i);
                acc1 += TValues.FromSignExtended(b) * Vector128.LoadUnsafe(ref xv, (nuint)i + 4);
                acc2 += TValues.FromSignExtended(c) * Vector128.LoadUnsafe(ref xv, (nuint)i + 8);
                acc3 += TValues.FromSignExtended(d) * Vector128.LoadUnsafe(ref xv, (nuint)i + 12);
            }
            acc0.StoreUnsafe(ref l); acc1.StoreUnsafe(ref l, 4); acc2.StoreUnsafe(ref l, 8); acc3.StoreUnsafe(ref l, 12);
        }
        else lanes.Clear();
        var table = HalfToFloat;
        ref float xo = ref MemoryMarshal.GetReference(x.Values);
        for (; i < n; i++) Unsafe.Add(ref l, i & 15) += table[Unsafe.Add(ref h, i)] * Unsafe.Add(ref xo, i);
        return Kernels.ReduceLanes(lanes);
    }

    /// <summary>Decode over four short rows at once (<see cref="FloatRows.Dot4Rows{TValues}"/>): four independent
    /// 16-lane sums keep the adder busy where one row's sum waits on its previous add.</summary>
    public override bool PrefersFourRows(int rowBytes) => Kernels.VectorBits >= 256 && rowBytes <= FloatRows.MaxFourRowBytes;

    public override unsafe void Dot4Rows(ReadOnlySpan<byte> rows, int rowBytes, Activation x, Span<float> results)
    {
        if (Kernels.VectorBits < 256 || (x.Length & 15) != 0) base.Dot4Rows(rows, rowBytes, x, results);
        else if (x.HalfPairs is { } pairs && x.Length > 0)
        {
            CheckRange(rows, rowBytes, results, 0, 4);
            fixed (byte* w = rows)
            fixed (float* xp = pairs)
            fixed (float* o = results)
                Pairs.Dot4Rows(w, rowBytes, xp, x.Length, o);
        }
        else if (x.HalfScaled is not null) FloatRows.Dot4Rows<Scaled>(rows, rowBytes, x, results);
        else FloatRows.Dot4Rows<Values>(rows, rowBytes, x, results);
    }

    /// <summary>The F16 loads, with the 4-value form the Vector128 path uses.</summary>
    internal interface IHalfValues : IFloatValues
    {
        /// <summary>4 halves already sign-extended to 32 bits, as the type's loads convert them.</summary>
        static abstract Vector128<float> FromSignExtended(Vector128<int> wide);
    }

    internal struct Values : IHalfValues
    {
        public static int Size => 2;
        public static Span<float> Inputs(Activation x) => x.Values;

        /// <summary>16 halves at row[i] as floats, the same conversion from halves sign-extended to 32 bits: a
        /// shift by 13 puts the sign in bit 31 (copies in 28–30, masked off) and the magnitude in bits 13–27.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Load16(ref byte row, int i) => Scaled.Load16(ref row, i) * Vector512.Create(TwoPow112);

        /// <summary>4 halves already sign-extended to 32 bits, as floats (Load16's conversion).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<float> FromSignExtended(Vector128<int> wide) => Scaled.FromSignExtended(wide) * Vector128.Create(TwoPow112);

        /// <summary>8 halves at row[i] as floats (Load16's conversion: sign-extending load, shift by 13).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Load8(ref byte row, int i) => Scaled.Load8(ref row, i) * Vector256.Create(TwoPow112);
    }

    /// <summary>Halves as v·2^-112 (the bits of <see cref="Values"/>' conversion before its ×2^112: exact, for
    /// subnormal halves an f32 subnormal) times the activation times 2^112 (<see cref="Activation.HalfScaled"/>,
    /// exact: made only when every |x| &lt; 2^16 and finite). (v·2^-112)·(x·2^112) is the same real number as
    /// v·x, so one IEEE rounding gives the same product — also when it underflows (no flush to zero: .NET
    /// keeps subnormals) or is ±0 — and the sums are Values' sums bit for bit, one multiply fewer per value.</summary>
    internal struct Scaled : IHalfValues
    {
        public static int Size => 2;
        public static Span<float> Inputs(Activation x) => x.HalfScaled!;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Load16(ref byte row, int i)
        {
            var wide = Vector512.WidenLower(Vector256.LoadUnsafe(ref Unsafe.As<byte, short>(ref row), (nuint)i).ToVector512Unsafe());
            return (Vector512.ShiftLeft(wide, 13) & Vector512.Create(unchecked((int)0x8FFFFFFF))).AsSingle();
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<float> FromSignExtended(Vector128<int> wide) =>
            (Vector128.ShiftLeft(wide, 13) & Vector128.Create(unchecked((int)0x8FFFFFFF))).AsSingle();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Load8(ref byte row, int i)
        {
            var wide = Vector256.WidenLower(Vector128.LoadUnsafe(ref Unsafe.As<byte, short>(ref row), (nuint)i).ToVector256Unsafe());
            return (Vector256.ShiftLeft(wide, 13) & Vector256.Create(unchecked((int)0x8FFFFFFF))).AsSingle();
        }
    }

    /// <summary>The 256-bit decode loops over <see cref="Activation.HalfPairs"/>: 16 halves load as 8 little-endian
    /// 32-bit lanes, lane k holding half 2k in its low 16 bits and half 2k+1 in its high 16 bits. The odd halves are
    /// then one arithmetic shift by 3 and a mask from <see cref="Scaled"/>'s v·2^-112 (sign in bit 31, magnitude in
    /// bits 13–27); the even halves are the same two steps on the lanes loaded one half earlier (half 2k in the high
    /// 16 bits), or, for a row's first 16 values (nothing may be read before a row), on the lanes shifted left by 16.
    /// No widening shuffle. Each value's product is <see cref="Scaled"/>'s (same bits, multiplied by the same
    /// x·2^112), and the lanes are the contract's 16 (<see cref="Kernels.ReduceLanes"/>): the even accumulator's lane
    /// k is lane 2k, the odd one's lane 2k+1, each summing its terms in increasing index from +0. They are
    /// interleaved back into lane order once per row, before the documented fold, so the bits equal the other paths'.</summary>
    internal static class Pairs
    {
        private static Vector256<int> Mask => Vector256.Create(unchecked((int)0x8FFFE000));

        /// <summary>Halves i+1, i+3, …, i+15 of the row as v·2^-112, <paramref name="at"/> = 2i the byte offset of value i (a
        /// byte offset, not an int index: no sign extension or multiply per load in the loops).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        internal static Vector256<float> Odd(ref byte row, nint at) => HighHalves(ref Unsafe.Add(ref row, at));

        /// <summary>Halves i, i+2, …, i+14 (i ≥ 1, <paramref name="at"/> = 2i) from the lanes one half earlier.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        internal static Vector256<float> Even(ref byte row, nint at) => HighHalves(ref Unsafe.Add(ref row, at - 2));

        /// <summary>The high halves of the 8 lanes at <paramref name="at"/> as v·2^-112: one arithmetic shift by 3 and the mask.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector256<float> HighHalves(ref byte at) =>
            (Vector256.ShiftRightArithmetic(Vector256.LoadUnsafe(ref Unsafe.As<byte, int>(ref at)), 3) & Mask).AsSingle();

        /// <summary>Halves 0, 2, …, 14 from the same lanes as <see cref="Odd"/> at 0 (a row's first 16 values: nothing may be
        /// read before the row).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        internal static Vector256<float> EvenFirst(ref byte row) =>
            (Vector256.ShiftRightArithmetic(Vector256.ShiftLeft(Vector256.LoadUnsafe(ref Unsafe.As<byte, int>(ref row)), 16), 3) & Mask).AsSingle();

        /// <summary>The 16 contract lanes in order from the even and odd accumulators (lane 2k = even[k], 2k+1 = odd[k]).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static (Vector256<float> Low, Vector256<float> High) Interleave(Vector256<float> even, Vector256<float> odd)
        {
            var a = Avx.UnpackLow(even, odd);  // e0 o0 e1 o1 | e4 o4 e5 o5
            var b = Avx.UnpackHigh(even, odd); // e2 o2 e3 o3 | e6 o6 e7 o7
            return (Avx.Permute2x128(a, b, 0x20), Avx.Permute2x128(a, b, 0x31));
        }

        public static float Dot(ReadOnlySpan<byte> row, Activation x, float[] pairs)
        {
            int n = x.Length, full = n & ~15, i = 0;
            ref byte w = ref MemoryMarshal.GetReference(row);
            ref float xp = ref MemoryMarshal.GetArrayDataReference(pairs);
            var even = Vector256<float>.Zero; var odd = Vector256<float>.Zero;
            if (full > 0)
            {
                even += EvenFirst(ref w) * Vector256.LoadUnsafe(ref xp);
                odd += Odd(ref w, 0) * Vector256.LoadUnsafe(ref xp, 8);
                for (i = 16; i < full; i += 16)
                {
                    even += Even(ref w, 2 * i) * Vector256.LoadUnsafe(ref xp, (nuint)i);
                    odd += Odd(ref w, 2 * i) * Vector256.LoadUnsafe(ref xp, (nuint)i + 8);
                }
            }
            Span<float> lanes = stackalloc float[Kernels.Lanes];
            ref float l = ref MemoryMarshal.GetReference(lanes);
            var (low, high) = Interleave(even, odd);
            low.StoreUnsafe(ref l); high.StoreUnsafe(ref l, 8);
            var table = HalfToFloat;
            ref ushort h = ref Unsafe.As<byte, ushort>(ref w);
            ref float xo = ref MemoryMarshal.GetReference(x.Values);
            for (; i < n; i++) Unsafe.Add(ref l, i & 15) += table[Unsafe.Add(ref h, i)] * Unsafe.Add(ref xo, i);
            return Kernels.ReduceLanes(lanes);
        }

        /// <summary>Four consecutive rows per pass (the caller checks the width and that n is a multiple of 16), with
        /// <see cref="FloatRows.Dot4Rows{TValues}"/>' prefetch two passes ahead. Pointers and one byte offset keep the loop's
        /// address arithmetic to an add: int indices cost a sign extension per load, scalar work that competes with the
        /// conversions for the vector ports on Intel cores. `--decode-kernels --isa avx2 --formats F16`, Intel Xeon (family 6
        /// model 207), ms CPU per token against int indices: 15M 1.77–1.80 → 1.66–1.75 (four alternations, 25 reps), 110M
        /// 18.3–18.8 → 17.6–17.9 (three, 15 reps).</summary>
        public static unsafe void Dot4Rows(byte* w0, nint rowBytes, float* xp, nint n, float* results)
        {
            byte* w1 = w0 + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes, ahead = w0 + 8 * rowBytes;
            var xe = Vector256.Load(xp); var xo = Vector256.Load(xp + 8);
            var z = Vector256<float>.Zero;
            var e0 = z + EvenFirst(ref *w0) * xe; var o0 = z + Odd(ref *w0, 0) * xo;
            var e1 = z + EvenFirst(ref *w1) * xe; var o1 = z + Odd(ref *w1, 0) * xo;
            var e2 = z + EvenFirst(ref *w2) * xe; var o2 = z + Odd(ref *w2, 0) * xo;
            var e3 = z + EvenFirst(ref *w3) * xe; var o3 = z + Odd(ref *w3, 0) * xo;
            // o: the byte offset of value i in a row (2i); the pass reads 4 × 32 bytes, and prefetches as much 8 rows ahead.
            for (nint o = 32, end = 2 * n; o < end; o += 32)
            {
                IntegerDot.Prefetch(ahead + 4 * o);
                IntegerDot.Prefetch(ahead + 4 * o + 64);
                float* xi = (float*)((byte*)xp + 2 * o);
                xe = Vector256.Load(xi); xo = Vector256.Load(xi + 8);
                e0 += Even(ref *w0, o) * xe; o0 += Odd(ref *w0, o) * xo;
                e1 += Even(ref *w1, o) * xe; o1 += Odd(ref *w1, o) * xo;
                e2 += Even(ref *w2, o) * xe; o2 += Odd(ref *w2, o) * xo;
                e3 += Even(ref *w3, o) * xe; o3 += Odd(ref *w3, o) * xo;
            }
            var (l0, h0) = Interleave(e0, o0); var (l1, h1) = Interleave(e1, o1);
            var (l2, h2) = Interleave(e2, o2); var (l3, h3) = Interleave(e3, o3);
            Kernels.ReduceLanes4(l0, h0, l1, h1, l2, h2, l3, h3, new Span<float>(results, 4));
        }
    }

    /// <summary>Decode of a row range: at 256 bits with the pair form, four rows per pass (<see cref="Pairs.Dot4Rows"/>; on
    /// 4 KB rows too, where two per pass measured slower: `--profile --isa avx2 --shapes 110M --formats F16`, Zen 5, ffn_down
    /// 1.81–1.94 → 1.63–1.64 ms per token, and one at a time 2.04–2.29); at 512 bits with the scaled form, long rows two per pass
    /// (<see cref="FloatRows.DotRowPairs{TValues}"/>) and short ones through <see cref="Dot4Rows"/> (<see cref="Scaled"/>'s widening
    /// load, one per 16 halves: `--decode-kernels` 110M F16 at AVX-512 on this session's Zen 5 VM, per matrix, CPU time,
    /// q 0.46-0.47 → 0.37 ms, up 1.23-1.31 → 0.97-1.09, the classifier 1.57-1.69 → 1.27-1.29 against the pair loops);
    /// the rest one at a time. Every result has <see cref="Dot"/>'s bits.</summary>
    public override unsafe void DecodeRows(ReadOnlySpan<byte> data, int rowBytes, Activation x, Span<float> output, int rowStart, int rowEnd)
    {
        int n = x.Length;
        int r = rowStart;
        if (Kernels.VectorBits >= 512 && (n & 15) == 0 && n > 0 && x.HalfScaled is { } scaled && (long)n * 2 <= rowBytes && !PrefersFourRows(rowBytes))
        {
            CheckRange(data, rowBytes, output, rowStart, rowEnd);
            int pairCount = (rowEnd - rowStart) / 2;
            fixed (byte* rows = data)
            fixed (float* xv = scaled)
            fixed (float* o = output)
                FloatRows.DotRowPairs<Scaled>(rows + (nint)rowStart * rowBytes, rowBytes, xv, (nuint)n, o + rowStart, pairCount);
            r += 2 * pairCount;
            if (r < rowEnd) output[r] = Dot(data.Slice(r * rowBytes, rowBytes), x);
            return;
        }
        if (Kernels.VectorBits < 256 || (n & 15) != 0 || n == 0 || x.HalfPairs is not { } pairs || (long)n * 2 > rowBytes)
        {
            base.DecodeRows(data, rowBytes, x, output, rowStart, rowEnd);
            return;
        }
        CheckRange(data, rowBytes, output, rowStart, rowEnd);
        fixed (byte* rows = data)
        fixed (float* xp = pairs)
        fixed (float* o = output)
            for (; r + 4 <= rowEnd; r += 4) Pairs.Dot4Rows(rows + (nint)r * rowBytes, rowBytes, xp, n, o + r);
        for (; r < rowEnd; r++) output[r] = Pairs.Dot(data.Slice(r * rowBytes, rowBytes), x, pairs);
    }

    /// <summary>Prefill, four rows per pass: the rows are converted once (exactly) and dotted with every token
    /// as F32 (<see cref="FloatRows.DotManyRows4"/>), which has this kernel's bits.</summary>
    public override bool DotManyRows4(ReadOnlySpan<byte> rows, int rowBytes, Activation[] xs, int count, Span<float> output, int stride, int rowIndex)
    {
        int n = xs[0].Length;
        if (Kernels.VectorBits < 256 || 16 * n > FloatRows.MaxManyRowsBytes) return false;
        // On a line: the tiles load it in 32- or 64-byte steps, and where the stack put it varied between processes.
        var w = IO.CacheLines.Start(stackalloc float[4 * n + IO.CacheLines.Bytes / 4 - 1], 4 * n);
        var h = MemoryMarshal.Cast<byte, ushort>(rows);
        for (int k = 0; k < 4; k++) ToSingle(h.Slice(k * rowBytes / 2, n), w.Slice(k * n, n));
        FloatRows.DotManyRows4(w[..n], w.Slice(n, n), w.Slice(2 * n, n), w.Slice(3 * n, n), xs, count, output, stride, rowIndex);
        return true;
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
            Kernels.Dot4(w, xs[t].Values, xs[t + 1].Values, xs[t + 2].Values, xs[t + 3].Values, four);
            for (int k = 0; k < 4; k++) output[(t + k) * stride + rowIndex] = four[k];
        }
        for (; t < count; t++) output[t * stride + rowIndex] = Kernels.Dot(w, xs[t].Values);
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
    internal static readonly float TwoPow112 = BitConverter.Int32BitsToSingle(0x77800000);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> ToSingle(Vector512<uint> h)
    {
        var v = Vector512.ShiftRightArithmetic(Vector512.ShiftLeft(h, 16).AsInt32(), 3) & Vector512.Create(unchecked((int)0x8FFFFFFF));
        return v.AsSingle() * Vector512.Create(TwoPow112);
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
