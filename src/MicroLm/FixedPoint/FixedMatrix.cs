using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using MicroLm.Gguf;
using MicroLm.Tensors;

namespace MicroLm.FixedPoint;

/// <summary>A weight matrix in the fixed backend's integer form, converted once at load: blocks of 32
/// values along a row, each an int16 quant q, and per block an exact scale m·2^e (int m, int e), so a
/// weight is q·m·2^e exactly.
/// <list type="bullet">
/// <item>Q8_0 and Q4_0 keep their integers (Q4_0's nibbles minus 8); their F16 block scale d is
/// decoded from its bits into m (|m| &lt; 2¹¹) and e, exactly.</item>
/// <item>F32, F16 and BF16 are quantized per block to 16 bits: e is chosen so the block's largest |w|
/// becomes a quant in [2¹⁴, 2¹⁵), m = 1, q = round(w / 2^e) (ties toward +∞, clamped to ±32767):
/// a relative error of at most 2⁻¹⁵ of the block's largest weight.</item>
/// </list>
/// A dot product with a Q16.16 activation sums each block's q·x exactly in 64 bits (|Σ| ≤ 32·2¹⁵·2³¹ =
/// 2⁵¹), multiplies by m (≤ 2⁵⁴), scales it to 2⁻³² units and adds the blocks in order on 64 bits
/// (saturating, counted); the result is rounded to Q16.16 once.</summary>
internal sealed class FixedMatrix
{
    public const int Block = 32;
    public string Name { get; }
    public int Rows { get; }
    public int Columns { get; }
    private readonly short[] _quants;   // rows × columns
    private readonly int[] _mantissa;   // rows × blocks: m
    private readonly int[] _shift;      // rows × blocks: e + 16 (the shift from q·x in Q16.16 units to 2⁻³² units)
    private readonly int _blocks, _stride; // blocks per row, quants per row (_blocks · 32)
    /// <summary>Every quant within ±128 (Q8_0, Q4_0): a block's q·x halves fit 32-bit lanes (see <see cref="BlockSum"/>).</summary>
    private readonly bool _narrow;

    public FixedMatrix(GgufFile file, GgufTensorInfo t)
    {
        Name = t.Name;
        Columns = checked((int)t.Shape[0]);
        Rows = checked((int)(t.ElementCount / System.Math.Max(1, t.Shape[0])));
        if (Columns % Block != 0 && t.Type.BlockSize != 1)
            throw new MicroLmException($"'{t.Name}' has {Columns} columns, not a multiple of its {t.Type.Name} blocks");
        // Float rows whose length is not a multiple of 32 end in a shorter block (padded with zero quants).
        _blocks = (Columns + Block - 1) / Block;
        _stride = _blocks * Block;
        _quants = new short[(long)Rows * _stride];
        _mantissa = new int[Rows * _blocks];
        _shift = new int[Rows * _blocks];
        var data = file.GetTensorData(t).Span;
        switch (t.Type.Type)
        {
            case GgmlType.Q8_0: FromQ8_0(data); break;
            case GgmlType.Q4_0: FromQ4_0(data); break;
            case GgmlType.F32: case GgmlType.F16: case GgmlType.BF16: FromFloats(data, t.Type.Type); break;
            default:
                throw new MicroLmException($"the fixed-point backend reads F32, F16, BF16, Q8_0 and Q4_0 weights; '{t.Name}' is {t.Type.Name}");
        }
        _narrow = t.Type.Type is GgmlType.Q8_0 or GgmlType.Q4_0;
    }

    private void SetScale(int block, ushort f16, string what)
    {
        if (!Fixed.DecodeFloat16(f16, out long m, out int e))
            throw new MicroLmException($"'{Name}' has a non-finite block scale in {what} {block}");
        _mantissa[block] = (int)m;
        _shift[block] = e + Fixed.FracBits;
    }

    private void FromQ8_0(ReadOnlySpan<byte> data)
    {
        for (int b = 0; b < Rows * _blocks; b++)
        {
            var block = data.Slice(b * 34, 34);
            SetScale(b, BinaryPrimitives.ReadUInt16LittleEndian(block), "block");
            for (int i = 0; i < Block; i++) _quants[(long)b * Block + i] = (sbyte)block[2 + i];
        }
    }

    private void FromQ4_0(ReadOnlySpan<byte> data)
    {
        for (int b = 0; b < Rows * _blocks; b++)
        {
            var block = data.Slice(b * 18, 18);
            SetScale(b, BinaryPrimitives.ReadUInt16LittleEndian(block), "block");
            for (int i = 0; i < 16; i++)
            {
                _quants[(long)b * Block + i] = (short)((block[2 + i] & 0xF) - 8);
                _quants[(long)b * Block + i + 16] = (short)((block[2 + i] >> 4) - 8);
            }
        }
    }

    private void FromFloats(ReadOnlySpan<byte> data, GgmlType type)
    {
        var m = new long[Block];
        var e = new int[Block];
        for (int r = 0; r < Rows; r++)
            for (int j = 0; j < _blocks; j++)
            {
                int b = r * _blocks + j;
                for (int i = 0; i < Block; i++)
                {
                    int column = j * Block + i;
                    if (column >= Columns) { m[i] = 0; e[i] = 0; }
                    else if (!DecodeValue(data, type, r * Columns + column, out m[i], out e[i]))
                        throw new MicroLmException($"'{Name}' holds a non-finite weight (row {r}, column {column})");
                }
                QuantizeBlock(b, m, e);
            }
    }

    /// <summary>Value <paramref name="i"/> of an F32, F16 or BF16 tensor as m·2^e, from its bits.</summary>
    private static bool DecodeValue(ReadOnlySpan<byte> data, GgmlType type, int i, out long m, out int e) => type switch
    {
        GgmlType.F16 => Fixed.DecodeFloat16(BinaryPrimitives.ReadUInt16LittleEndian(data[(2 * i)..]), out m, out e),
        GgmlType.BF16 => Fixed.DecodeFloat32((uint)BinaryPrimitives.ReadUInt16LittleEndian(data[(2 * i)..]) << 16, out m, out e),
        _ => Fixed.DecodeFloat32(BinaryPrimitives.ReadUInt32LittleEndian(data[(4 * i)..]), out m, out e),
    };

    /// <summary>Values m[i]·2^e[i] → int16 quants with a shared power-of-two scale.</summary>
    private void QuantizeBlock(int b, long[] m, int[] e)
    {
        int top = int.MinValue; // the block's largest |w| is below 2^top
        for (int i = 0; i < Block; i++)
            if (m[i] != 0) top = System.Math.Max(top, e[i] + Fixed.BitLength((ulong)System.Math.Abs(m[i])));
        int scale = top == int.MinValue ? 0 : top - 15;
        var guard = new RangeGuard();
        for (int i = 0; i < Block; i++)
        {
            long q = Fixed.Scale(m[i], e[i] - scale, guard);
            _quants[(long)b * Block + i] = (short)System.Math.Clamp(q, -32767, 32767);
        }
        _mantissa[b] = 1;
        _shift[b] = scale + Fixed.FracBits;
    }

    /// <summary>Row r as Q16.16 values (an embedding lookup); a weight beyond Q16.16's range is counted on the guard.</summary>
    public void ReadRow(int r, Span<int> output, RangeGuard guard)
    {
        if ((uint)r >= (uint)Rows) throw new MicroLmException($"row {r} is outside '{Name}' ({Rows} rows)");
        for (int b = 0; b < _blocks; b++)
        {
            int at = r * _blocks + b;
            long m = _mantissa[at];
            int s = _shift[at]; // q·m·2^e in Q16.16 is q·m·2^(e+16)
            for (int i = 0; i < Block && b * Block + i < Columns; i++)
                output[b * Block + i] = Fixed.Saturate(Fixed.Scale(_quants[(long)at * Block + i] * m, s, guard), guard);
        }
    }

    /// <summary>Row r · x, with x in Q16.16, as Q16.16.</summary>
    public int Dot(int r, ReadOnlySpan<int> x, RangeGuard guard)
    {
        var q = _quants.AsSpan((int)((long)r * _stride), _stride);
        long acc = 0; // in 2⁻³² units
        for (int b = 0; b < _blocks; b++)
        {
            int length = System.Math.Min(Block, Columns - b * Block);
            var qb = q.Slice(b * Block, length);
            var xb = x.Slice(b * Block, length);
            long sum = BlockSum(qb, xb, _narrow);
            int at = r * _blocks + b;
            long term = sum * _mantissa[at];
            int s = _shift[at];
            term = s >= 0 ? Fixed.ShiftLeftSaturate(term, s, guard) : term >> System.Math.Min(-s, 63);
            acc = Fixed.AddSaturate(acc, term, guard);
        }
        return Fixed.Saturate(Fixed.RoundShift(acc, 16), guard);
    }

    /// <summary>Σ q[i]·x[i] of one block, exactly, in 64 bits. The vector paths split each Q16.16 x into
    /// hi = x ≫ 16 (signed) and lo = x &amp; 0xFFFF, so q·x = q·hi·2¹⁶ + q·lo with every product in 32 bits
    /// (|q·hi| ≤ 2³⁰, 0 ≤ lo &lt; 2¹⁶ so |q·lo| &lt; 2³¹). Narrow quants (|q| ≤ 128) sum a whole block's
    /// products in 32-bit lanes (≤ 8·128·2¹⁶ &lt; 2²⁷ per lane); wide ones widen each product to 64 bits.
    /// Exact integers in every path, so every path returns the same sum (the scalar loop is the definition).</summary>
    internal static long BlockSum(ReadOnlySpan<short> q, ReadOnlySpan<int> x, bool narrow)
    {
        int bits = Math.Kernels.VectorBits;
        // Constant arguments: each call inlines its own loop, without a test of narrow inside it.
        if (q.Length == Block && bits >= 256) return narrow ? Sum256(q, x, narrow: true) : Sum256(q, x, narrow: false);
        if (q.Length == Block && bits >= 128) return narrow ? Sum128(q, x, narrow: true) : Sum128(q, x, narrow: false);
        long sum = 0;
        for (int i = 0; i < q.Length; i++) sum += (long)q[i] * x[i];
        return sum;
    }

    /// <summary>One block's sum with Vector256: the hi and lo products summed in 32-bit lanes (narrow) or
    /// each widened to 64 bits first.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static long Sum256(ReadOnlySpan<short> q, ReadOnlySpan<int> x, bool narrow)
    {
        ref short qr = ref MemoryMarshal.GetReference(q);
        ref int xr = ref MemoryMarshal.GetReference(x);
        Vector256<int> hi32 = default, lo32 = default, mask = Vector256.Create(0xFFFF);
        Vector256<long> hi64 = default, lo64 = default;
        for (int j = 0; j < Block; j += 8)
        {
            var xv = Vector256.LoadUnsafe(ref xr, (nuint)j);
            var qv = Vector256.WidenLower(Vector128.LoadUnsafe(ref qr, (nuint)j).ToVector256Unsafe());
            var h = qv * Vector256.ShiftRightArithmetic(xv, 16);
            var l = qv * (xv & mask);
            if (narrow) { hi32 += h; lo32 += l; }
            else
            {
                hi64 += Vector256.WidenLower(h) + Vector256.WidenUpper(h);
                lo64 += Vector256.WidenLower(l) + Vector256.WidenUpper(l);
            }
        }
        return narrow ? ((long)Vector256.Sum(hi32) << 16) + Vector256.Sum(lo32) : (Vector256.Sum(hi64) << 16) + Vector256.Sum(lo64);
    }

    /// <summary><see cref="Sum256"/> with Vector128.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static long Sum128(ReadOnlySpan<short> q, ReadOnlySpan<int> x, bool narrow)
    {
        ref short qr = ref MemoryMarshal.GetReference(q);
        ref int xr = ref MemoryMarshal.GetReference(x);
        Vector128<int> hi32 = default, lo32 = default, mask = Vector128.Create(0xFFFF);
        Vector128<long> hi64 = default, lo64 = default;
        for (int j = 0; j < Block; j += 4)
        {
            var xv = Vector128.LoadUnsafe(ref xr, (nuint)j);
            var qv = Vector128.WidenLower(Vector64.LoadUnsafe(ref qr, (nuint)j).ToVector128Unsafe());
            var h = qv * Vector128.ShiftRightArithmetic(xv, 16);
            var l = qv * (xv & mask);
            if (narrow) { hi32 += h; lo32 += l; }
            else
            {
                hi64 += Vector128.WidenLower(h) + Vector128.WidenUpper(h);
                lo64 += Vector128.WidenLower(l) + Vector128.WidenUpper(l);
            }
        }
        return narrow ? ((long)Vector128.Sum(hi32) << 16) + Vector128.Sum(lo32) : (Vector128.Sum(hi64) << 16) + Vector128.Sum(lo64);
    }

    /// <summary>output[t·Rows + r] = row r · input[t·Columns ..] for tokens 0..count−1 and rows [start, end).</summary>
    public void MatMul(int[] input, int count, int[] output, int start, int end, RangeGuard guard)
    {
        for (int r = start; r < end; r++)
            for (int t = 0; t < count; t++)
                output[t * Rows + r] = Dot(r, input.AsSpan(t * Columns, Columns), guard);
    }

    /// <summary>A 1-D tensor (norm weight, bias) of F32, F16 or BF16 values as Q16.16, rounded; a value
    /// beyond ±32768 is an error.</summary>
    public static int[] Vector(GgufFile file, GgufTensorInfo t, int length)
    {
        if (t.ElementCount != length) throw new MicroLmException($"tensor '{t.Name}' has {t.ElementCount} values, {length} expected");
        var data = file.GetTensorData(t).Span;
        var result = new int[length];
        for (int i = 0; i < length; i++)
        {
            if (t.Type.Type is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16))
                throw new MicroLmException($"the fixed-point backend reads 1-D tensors of F32, F16 or BF16; '{t.Name}' is {t.Type.Name}");
            var guard = new RangeGuard();
            long v = DecodeValue(data, t.Type.Type, i, out long m, out int e) ? Fixed.Scale(m, e + Fixed.FracBits, guard) : long.MaxValue;
            if (guard.Count != 0 || v > int.MaxValue || v < int.MinValue)
                throw new MicroLmException($"'{t.Name}'[{i}] is outside the fixed-point range (±32768) of the fixed backend");
            result[i] = (int)v;
        }
        return result;
    }
}
