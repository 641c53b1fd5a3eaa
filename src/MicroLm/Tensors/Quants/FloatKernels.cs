using System.Buffers.Binary;
using System.Runtime.InteropServices;
using MicroLm.Math;

namespace MicroLm.Tensors.Quants;

public sealed class F32Kernel : RowKernel
{
    public static readonly F32Kernel Instance = new();

    public override void Dequantize(ReadOnlySpan<byte> row, Span<float> output) =>
        MemoryMarshal.Cast<byte, float>(row)[..output.Length].CopyTo(output);

    public override float Dot(ReadOnlySpan<byte> row, Activation x) =>
        Kernels.Dot(MemoryMarshal.Cast<byte, float>(row), x.Values.AsSpan(0, x.Length));
}

/// <summary>IEEE half → float is exact, so a 64K-entry table gives the same bits as any conversion instruction.</summary>
public sealed class F16Kernel : RowKernel
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

    public override float Dot(ReadOnlySpan<byte> row, Activation x) => DotByDequantizing(row, x, 1, 2);
}

public sealed class BF16Kernel : RowKernel
{
    public static readonly BF16Kernel Instance = new();

    public override void Dequantize(ReadOnlySpan<byte> row, Span<float> output)
    {
        for (int i = 0; i < output.Length; i++)
            output[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(row[(2 * i)..]) << 16);
    }

    public override float Dot(ReadOnlySpan<byte> row, Activation x) => DotByDequantizing(row, x, 1, 2);
}
