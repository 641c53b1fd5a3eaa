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
}

public sealed class Q8_0Kernel : RowKernel
{
    public static readonly Q8_0Kernel Instance = new();
    public override bool UsesQ8Activation => true;

    public override void Dequantize(ReadOnlySpan<byte> row, Span<float> output)
    {
        for (int b = 0; b < output.Length / 32; b++)
        {
            var block = row.Slice(b * 34, 34);
            float d = Block.Half(block, 0);
            for (int i = 0; i < 32; i++) output[b * 32 + i] = d * (sbyte)block[2 + i];
        }
    }

    public override float Dot(ReadOnlySpan<byte> row, Activation x) => LaneDot<Q8_0Block>.Dot(row, x);

    protected override void Dot4(ReadOnlySpan<byte> row, Activation a, Activation b, Activation c, Activation d, Span<float> results) =>
        LaneDot<Q8_0Block>.Dot4(row, a, b, c, d, results);

    // Measured (docs/performance.md): four Q8_0 rows at a time helped little on small matrices and
    // halved decode speed on the 110M shape's large ones, so decode streams one Q8_0 row at a time.
    public override bool PrefersFourRows => false;

    public override void Dot4Rows(ReadOnlySpan<byte> rows, int rowBytes, Activation x, Span<float> results) =>
        LaneDot<Q8_0Block>.Dot4Rows(rows, rowBytes, x, results);
}

public sealed class Q4_0Kernel : RowKernel
{
    public static readonly Q4_0Kernel Instance = new();
    public override bool UsesQ8Activation => true;

    public override void Dequantize(ReadOnlySpan<byte> row, Span<float> output)
    {
        for (int b = 0; b < output.Length / 32; b++)
        {
            var block = row.Slice(b * 18, 18);
            float d = Block.Half(block, 0);
            for (int i = 0; i < 16; i++)
            {
                output[b * 32 + i] = d * ((block[2 + i] & 0xF) - 8);
                output[b * 32 + i + 16] = d * ((block[2 + i] >> 4) - 8);
            }
        }
    }

    public override float Dot(ReadOnlySpan<byte> row, Activation x) => LaneDot<Q4_0Block>.Dot(row, x);

    protected override void Dot4(ReadOnlySpan<byte> row, Activation a, Activation b, Activation c, Activation d, Span<float> results) =>
        LaneDot<Q4_0Block>.Dot4(row, a, b, c, d, results);

    /// <summary>Prefill: the row is unpacked once into Q8_0 blocks (same scale, values nibble − 8), whose
    /// Q8_0 dot is this kernel's dot operation for operation, so the bits are the same.</summary>
    public override void DotMany(ReadOnlySpan<byte> row, Activation[] xs, int count, Span<float> output, int stride, int rowIndex)
    {
        int blocks = xs[0].Length / 32;
        if (count < 8 || blocks > 512) { base.DotMany(row, xs, count, output, stride, rowIndex); return; }
        Span<byte> q8 = stackalloc byte[blocks * 34];
        for (int b = 0; b < blocks; b++)
        {
            var block = row.Slice(b * 18, 18);
            var target = q8.Slice(b * 34, 34);
            target[0] = block[0]; target[1] = block[1];
            var (lo, hi) = IntegerDot.UnpackQ4(ref MemoryMarshal.GetReference(block[2..]));
            lo.AsByte().CopyTo(target[2..]);
            hi.AsByte().CopyTo(target[18..]);
        }
        Q8_0Kernel.Instance.DotMany(q8, xs, count, output, stride, rowIndex);
    }

    public override bool PrefersFourRows => true;

    public override void Dot4Rows(ReadOnlySpan<byte> rows, int rowBytes, Activation x, Span<float> results) =>
        LaneDot<Q4_0Block>.Dot4Rows(rows, rowBytes, x, results);
}

public sealed class Q4_1Kernel : RowKernel
{
    public static readonly Q4_1Kernel Instance = new();
    public override bool UsesQ8Activation => true;

    public override void Dequantize(ReadOnlySpan<byte> row, Span<float> output)
    {
        for (int b = 0; b < output.Length / 32; b++)
        {
            var block = row.Slice(b * 20, 20);
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
            var block = row.Slice(b * 20, 20);
            int o = b * 32, isum = 0;
            for (int i = 0; i < 16; i++)
                isum += (block[4 + i] & 0xF) * q[o + i] + (block[4 + i] >> 4) * q[o + i + 16];
            sum += isum * (Block.Half(block, 0) * x.Q8Scales[b]) + Block.Half(block, 2) * x.Q8ScaledSums[b];
        }
        return sum;
    }
}

public sealed class Q5_0Kernel : RowKernel
{
    public static readonly Q5_0Kernel Instance = new();
    public override bool UsesQ8Activation => true;

    private static int Value(ReadOnlySpan<byte> block, uint qh, int i, int qsAt) =>
        i < 16 ? (block[qsAt + i] & 0xF) | (int)((qh >> i) & 1) << 4
               : (block[qsAt + i - 16] >> 4) | (int)((qh >> i) & 1) << 4;

    public override void Dequantize(ReadOnlySpan<byte> row, Span<float> output)
    {
        for (int b = 0; b < output.Length / 32; b++)
        {
            var block = row.Slice(b * 22, 22);
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
            var block = row.Slice(b * 22, 22);
            uint qh = BinaryPrimitives.ReadUInt32LittleEndian(block[2..]);
            int o = b * 32, isum = 0;
            for (int i = 0; i < 32; i++) isum += (Value(block, qh, i, 6) - 16) * q[o + i];
            sum += isum * (Block.Half(block, 0) * x.Q8Scales[b]);
        }
        return sum;
    }
}

public sealed class Q5_1Kernel : RowKernel
{
    public static readonly Q5_1Kernel Instance = new();
    public override bool UsesQ8Activation => true;

    private static int Value(ReadOnlySpan<byte> block, uint qh, int i) =>
        i < 16 ? (block[8 + i] & 0xF) | (int)((qh >> i) & 1) << 4
               : (block[8 + i - 16] >> 4) | (int)((qh >> i) & 1) << 4;

    public override void Dequantize(ReadOnlySpan<byte> row, Span<float> output)
    {
        for (int b = 0; b < output.Length / 32; b++)
        {
            var block = row.Slice(b * 24, 24);
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
            var block = row.Slice(b * 24, 24);
            uint qh = BinaryPrimitives.ReadUInt32LittleEndian(block[4..]);
            int o = b * 32, isum = 0;
            for (int i = 0; i < 32; i++) isum += Value(block, qh, i) * q[o + i];
            sum += isum * (Block.Half(block, 0) * x.Q8Scales[b]) + Block.Half(block, 2) * x.Q8ScaledSums[b];
        }
        return sum;
    }
}
