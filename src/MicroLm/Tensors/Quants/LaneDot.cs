using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace MicroLm.Tensors.Quants;

/// <summary>A 32-value block whose values are small signed integers and whose F16 scale comes first:
/// how to read its values (Q8_0 loads them, Q4_0 unpacks nibbles).</summary>
internal interface ILaneBlock
{
    static abstract int Bytes { get; }
    static abstract Vector256<sbyte> Values256(ref byte block);
    static abstract (Vector128<sbyte> Lo, Vector128<sbyte> Hi) Values128(ref byte block);
}

internal struct Q8_0Block : ILaneBlock
{
    public static int Bytes => 34;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<sbyte> Values256(ref byte block) => Vector256.LoadUnsafe(ref Unsafe.As<byte, sbyte>(ref Unsafe.Add(ref block, 2)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector128<sbyte> Lo, Vector128<sbyte> Hi) Values128(ref byte block)
    {
        ref sbyte q = ref Unsafe.As<byte, sbyte>(ref Unsafe.Add(ref block, 2));
        return (Vector128.LoadUnsafe(ref q), Vector128.LoadUnsafe(ref q, 16));
    }
}

internal struct Q4_0Block : ILaneBlock
{
    public static int Bytes => 18;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<sbyte> Values256(ref byte block)
    {
        var (lo, hi) = IntegerDot.UnpackQ4(ref Unsafe.Add(ref block, 2));
        return Vector256.Create(lo, hi);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector128<sbyte> Lo, Vector128<sbyte> Hi) Values128(ref byte block) => IntegerDot.UnpackQ4(ref Unsafe.Add(ref block, 2));
}

/// <summary>The 8-lane dot contract of <see cref="IntegerDot"/> for one block type, written once: a single
/// dot (256- or 128-bit path), four activations per row (prefill), four rows per activation (decode).
/// All three perform, per (row, activation), the same operations in the same order.</summary>
internal static class LaneDot<TBlock> where TBlock : ILaneBlock
{
    public static float Dot(ReadOnlySpan<byte> row, Activation x)
    {
        ref byte w = ref MemoryMarshal.GetReference(row);
        ref sbyte q = ref MemoryMarshal.GetArrayDataReference(x.Q8);
        var scales = x.Q8Scales;
        int blocks = x.Length / 32;
        if (IntegerDot.VectorBits >= 256)
        {
            var acc = Vector256<float>.Zero;
            for (int b = 0; b < blocks; b++)
            {
                ref byte block = ref Unsafe.Add(ref w, b * TBlock.Bytes);
                var groups = IntegerDot.Groups256(TBlock.Values256(ref block), Vector256.LoadUnsafe(ref q, (nuint)(b * 32)));
                acc += Vector256.ConvertToSingle(groups) * Vector256.Create(Block.Half(ref block) * scales[b]);
            }
            return IntegerDot.Fold(acc.GetLower(), acc.GetUpper());
        }
        var lo = Vector128<float>.Zero; var hi = Vector128<float>.Zero;
        for (int b = 0; b < blocks; b++)
        {
            ref byte block = ref Unsafe.Add(ref w, b * TBlock.Bytes);
            var (vl, vh) = TBlock.Values128(ref block);
            ref sbyte xq = ref Unsafe.Add(ref q, b * 32);
            var (gl, gh) = IntegerDot.Groups128(vl, vh, Vector128.LoadUnsafe(ref xq), Vector128.LoadUnsafe(ref xq, 16));
            var scale = Vector128.Create(Block.Half(ref block) * scales[b]);
            lo += Vector128.ConvertToSingle(gl) * scale;
            hi += Vector128.ConvertToSingle(gh) * scale;
        }
        return IntegerDot.Fold(lo, hi);
    }

    /// <summary>One row, four activations: the block is read once.</summary>
    public static void Dot4(ReadOnlySpan<byte> row, Activation a, Activation b, Activation c, Activation d, Span<float> results)
    {
        if (IntegerDot.VectorBits < 256)
        {
            results[0] = Dot(row, a); results[1] = Dot(row, b); results[2] = Dot(row, c); results[3] = Dot(row, d);
            return;
        }
        ref byte w = ref MemoryMarshal.GetReference(row);
        ref sbyte qa = ref MemoryMarshal.GetArrayDataReference(a.Q8), qb = ref MemoryMarshal.GetArrayDataReference(b.Q8);
        ref sbyte qc = ref MemoryMarshal.GetArrayDataReference(c.Q8), qd = ref MemoryMarshal.GetArrayDataReference(d.Q8);
        var accA = Vector256<float>.Zero; var accB = Vector256<float>.Zero; var accC = Vector256<float>.Zero; var accD = Vector256<float>.Zero;
        for (int bl = 0; bl < a.Length / 32; bl++)
        {
            ref byte block = ref Unsafe.Add(ref w, bl * TBlock.Bytes);
            var wv = TBlock.Values256(ref block);
            float dw = Block.Half(ref block);
            nuint at = (nuint)(bl * 32);
            accA += Vector256.ConvertToSingle(IntegerDot.Groups256(wv, Vector256.LoadUnsafe(ref qa, at))) * Vector256.Create(dw * a.Q8Scales[bl]);
            accB += Vector256.ConvertToSingle(IntegerDot.Groups256(wv, Vector256.LoadUnsafe(ref qb, at))) * Vector256.Create(dw * b.Q8Scales[bl]);
            accC += Vector256.ConvertToSingle(IntegerDot.Groups256(wv, Vector256.LoadUnsafe(ref qc, at))) * Vector256.Create(dw * c.Q8Scales[bl]);
            accD += Vector256.ConvertToSingle(IntegerDot.Groups256(wv, Vector256.LoadUnsafe(ref qd, at))) * Vector256.Create(dw * d.Q8Scales[bl]);
        }
        results[0] = IntegerDot.Fold(accA.GetLower(), accA.GetUpper());
        results[1] = IntegerDot.Fold(accB.GetLower(), accB.GetUpper());
        results[2] = IntegerDot.Fold(accC.GetLower(), accC.GetUpper());
        results[3] = IntegerDot.Fold(accD.GetLower(), accD.GetUpper());
    }

    /// <summary>Four consecutive rows, one activation: the activation block is read once.</summary>
    public static void Dot4Rows(ReadOnlySpan<byte> rows, int rowBytes, Activation x, Span<float> results)
    {
        if (IntegerDot.VectorBits < 256)
        {
            for (int k = 0; k < 4; k++) results[k] = Dot(rows.Slice(k * rowBytes, rowBytes), x);
            return;
        }
        ref byte w0 = ref MemoryMarshal.GetReference(rows);
        ref byte w1 = ref Unsafe.Add(ref w0, rowBytes);
        ref byte w2 = ref Unsafe.Add(ref w0, 2 * rowBytes);
        ref byte w3 = ref Unsafe.Add(ref w0, 3 * rowBytes);
        ref sbyte q = ref MemoryMarshal.GetArrayDataReference(x.Q8);
        var scales = x.Q8Scales;
        var a0 = Vector256<float>.Zero; var a1 = Vector256<float>.Zero; var a2 = Vector256<float>.Zero; var a3 = Vector256<float>.Zero;
        for (int b = 0; b < x.Length / 32; b++)
        {
            var xv = Vector256.LoadUnsafe(ref q, (nuint)(b * 32));
            float dx = scales[b];
            int o = b * TBlock.Bytes;
            ref byte b0 = ref Unsafe.Add(ref w0, o);
            ref byte b1 = ref Unsafe.Add(ref w1, o);
            ref byte b2 = ref Unsafe.Add(ref w2, o);
            ref byte b3 = ref Unsafe.Add(ref w3, o);
            a0 += Vector256.ConvertToSingle(IntegerDot.Groups256(TBlock.Values256(ref b0), xv)) * Vector256.Create(Block.Half(ref b0) * dx);
            a1 += Vector256.ConvertToSingle(IntegerDot.Groups256(TBlock.Values256(ref b1), xv)) * Vector256.Create(Block.Half(ref b1) * dx);
            a2 += Vector256.ConvertToSingle(IntegerDot.Groups256(TBlock.Values256(ref b2), xv)) * Vector256.Create(Block.Half(ref b2) * dx);
            a3 += Vector256.ConvertToSingle(IntegerDot.Groups256(TBlock.Values256(ref b3), xv)) * Vector256.Create(Block.Half(ref b3) * dx);
        }
        results[0] = IntegerDot.Fold(a0.GetLower(), a0.GetUpper());
        results[1] = IntegerDot.Fold(a1.GetLower(), a1.GetUpper());
        results[2] = IntegerDot.Fold(a2.GetLower(), a2.GetUpper());
        results[3] = IntegerDot.Fold(a3.GetLower(), a3.GetUpper());
    }
}
