using System.Buffers.Binary;

namespace MicroLm.Tensors.Quants;

/// <summary>Encodes float rows into GGUF tensor types, with the rules of ggml's reference (scalar)
/// quantizers, so a file written here holds the blocks llama-quantize would write for the same floats:
///   F16: IEEE round to nearest even (overflow to ±inf), as F16C and ggml's scalar fallback do.
///   BF16: round to nearest even on the upper 16 bits, NaN made quiet, subnormals kept.
///   Q8_0: d = max|x|/127 (stored as F16), q = round(x/d) with halves away from zero.
///   Q4_0: d = m/−8 where m is the value of largest magnitude (sign kept), q = min(15, trunc(x/d + 8.5)).
///   Q5_0: the same with 16: d = m/−16, q = min(31, trunc(x/d + 16.5)), fifth bits packed into qh.
///   Q4_1: d = (max−min)/15, m = min, q = min(15, trunc((x−min)/d + 0.5)).
///   Q5_1: d = (max−min)/31, m = min, q = trunc((x−min)/d + 0.5).
/// Every type divides by d through its reciprocal (x·(1/d)), as ggml does: x/d can round differently.
/// Values 0..15 of a 32-block go to the low nibbles of bytes 0..15, values 16..31 to the high nibbles.
/// The K-quants and IQ4 types are encoded by <see cref="KQuantizer"/>.</summary>
internal static class Quantizer
{
    /// <summary>The encoded bytes of <paramref name="values"/>, a whole number of rows of
    /// <paramref name="rowLength"/> values each (a multiple of the type's block size).</summary>
    public static byte[] Quantize(GgmlType type, ReadOnlySpan<float> values, int rowLength)
    {
        var info = TensorTypes.Get(type);
        if (rowLength <= 0) throw new ArgumentOutOfRangeException(nameof(rowLength), rowLength, "row length must be positive");
        if (rowLength % info.BlockSize != 0)
            throw new ArgumentException($"row length {rowLength} is not a multiple of {info.Name}'s block size {info.BlockSize}");
        if (values.Length % rowLength != 0)
            throw new ArgumentException($"{values.Length} values are not a whole number of rows of {rowLength}");
        var output = new byte[values.Length / rowLength * info.RowBytes(rowLength)];
        var o = output.AsSpan();
        switch (type)
        {
            case GgmlType.F32:
                for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(o[(4 * i)..], values[i]);
                break;
            case GgmlType.F16:
                for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(o[(2 * i)..], ToHalfBits(values[i]));
                break;
            case GgmlType.BF16:
                for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(o[(2 * i)..], ToBFloat16Bits(values[i]));
                break;
            case GgmlType.Q8_0: Blocks(values, o, 34, Q8_0); break;
            case GgmlType.Q4_0: Blocks(values, o, 18, Q4_0); break;
            case GgmlType.Q4_1: Blocks(values, o, 20, Q4_1); break;
            case GgmlType.Q5_0: Blocks(values, o, 22, Q5_0); break;
            case GgmlType.Q5_1: Blocks(values, o, 24, Q5_1); break;
            case GgmlType.Q2_K: Blocks(values, o, 256, 84, KQuantizer.Q2_K); break;
            case GgmlType.Q3_K: Blocks(values, o, 256, 110, KQuantizer.Q3_K); break;
            case GgmlType.Q4_K: Blocks(values, o, 256, 144, KQuantizer.Q4_K); break;
            case GgmlType.Q5_K: Blocks(values, o, 256, 176, KQuantizer.Q5_K); break;
            case GgmlType.Q6_K: Blocks(values, o, 256, 210, KQuantizer.Q6_K); break;
            case GgmlType.IQ4_NL: Blocks(values, o, 32, 18, KQuantizer.IQ4_NL); break;
            case GgmlType.IQ4_XS: Blocks(values, o, 256, 136, KQuantizer.IQ4_XS); break;
            default: throw new NotSupportedException($"quantizing to {info.Name} is not supported");
        }
        return output;
    }

    /// <summary>Tensor types <see cref="Quantize"/> can write.</summary>
    public static readonly GgmlType[] Supported =
        [GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1,
         GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.IQ4_NL, GgmlType.IQ4_XS];

    /// <summary>IEEE binary16 bits of <paramref name="f"/>, rounded to nearest even.</summary>
    public static ushort ToHalfBits(float f) => BitConverter.HalfToUInt16Bits((Half)f);

    /// <summary>bfloat16 bits of <paramref name="f"/>: round to nearest even, NaN forced quiet, subnormals kept.</summary>
    public static ushort ToBFloat16Bits(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if ((u & 0x7fffffffu) > 0x7f800000u) return (ushort)((u >> 16) | 0x40);
        return (ushort)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }

    private delegate void BlockEncoder(ReadOnlySpan<float> x, Span<byte> block);

    private static void Blocks(ReadOnlySpan<float> values, Span<byte> output, int bytesPerBlock, BlockEncoder encode) =>
        Blocks(values, output, 32, bytesPerBlock, encode);

    private static void Blocks(ReadOnlySpan<float> values, Span<byte> output, int blockSize, int bytesPerBlock, BlockEncoder encode)
    {
        for (int b = 0; b < values.Length / blockSize; b++)
            encode(values.Slice(b * blockSize, blockSize), output.Slice(b * bytesPerBlock, bytesPerBlock));
    }

    private static void WriteHalf(Span<byte> at, float f) => BinaryPrimitives.WriteUInt16LittleEndian(at, ToHalfBits(f));

    private static float Reciprocal(float d) => d != 0 ? 1f / d : 0f;

    // C's (int8_t)/(uint8_t) float casts truncate toward zero; the arguments here are never negative.
    private static int Trunc(float f) => (int)f;

    /// <summary>The value of largest magnitude, sign kept (the first one on ties).</summary>
    private static float SignedAbsMax(ReadOnlySpan<float> x)
    {
        float amax = 0, max = 0;
        foreach (float v in x)
            if (amax < MathF.Abs(v)) { amax = MathF.Abs(v); max = v; }
        return max;
    }

    private static (float Min, float Max) Range(ReadOnlySpan<float> x)
    {
        float min = float.MaxValue, max = -float.MaxValue;
        foreach (float v in x)
        {
            if (v < min) min = v;
            if (v > max) max = v;
        }
        return (min, max);
    }

    /// <summary>One Q8_0 block (32 values → 34 bytes), for callers that encode in place (the q8_0 KV cache).</summary>
    internal static void EncodeQ8_0(ReadOnlySpan<float> x, Span<byte> block) => Q8_0(x, block);

    private static void Q8_0(ReadOnlySpan<float> x, Span<byte> block)
    {
        float amax = 0;
        foreach (float v in x) amax = MathF.Max(amax, MathF.Abs(v));
        float d = amax / 127f, id = Reciprocal(d);
        WriteHalf(block, d);
        for (int j = 0; j < 32; j++) block[2 + j] = (byte)(sbyte)MathF.Round(x[j] * id, MidpointRounding.AwayFromZero);
    }

    private static void Q4_0(ReadOnlySpan<float> x, Span<byte> block)
    {
        float d = SignedAbsMax(x) / -8f, id = Reciprocal(d);
        WriteHalf(block, d);
        for (int j = 0; j < 16; j++)
        {
            int lo = System.Math.Min(15, Trunc(x[j] * id + 8.5f));
            int hi = System.Math.Min(15, Trunc(x[j + 16] * id + 8.5f));
            block[2 + j] = (byte)(lo | hi << 4);
        }
    }

    private static void Q4_1(ReadOnlySpan<float> x, Span<byte> block)
    {
        var (min, max) = Range(x);
        float d = (max - min) / 15f, id = Reciprocal(d);
        WriteHalf(block, d);
        WriteHalf(block[2..], min);
        for (int j = 0; j < 16; j++)
        {
            int lo = System.Math.Min(15, Trunc((x[j] - min) * id + 0.5f));
            int hi = System.Math.Min(15, Trunc((x[j + 16] - min) * id + 0.5f));
            block[4 + j] = (byte)(lo | hi << 4);
        }
    }

    private static void Q5_0(ReadOnlySpan<float> x, Span<byte> block)
    {
        float d = SignedAbsMax(x) / -16f, id = Reciprocal(d);
        WriteHalf(block, d);
        uint qh = 0;
        for (int j = 0; j < 16; j++)
        {
            int lo = System.Math.Min(31, Trunc(x[j] * id + 16.5f));
            int hi = System.Math.Min(31, Trunc(x[j + 16] * id + 16.5f));
            block[6 + j] = (byte)((lo & 0xF) | (hi & 0xF) << 4);
            qh |= (uint)(lo >> 4 & 1) << j | (uint)(hi >> 4 & 1) << (j + 16);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(block[2..], qh);
    }

    private static void Q5_1(ReadOnlySpan<float> x, Span<byte> block)
    {
        var (min, max) = Range(x);
        float d = (max - min) / 31f, id = Reciprocal(d);
        WriteHalf(block, d);
        WriteHalf(block[2..], min);
        uint qh = 0;
        for (int j = 0; j < 16; j++)
        {
            int lo = Trunc((x[j] - min) * id + 0.5f) & 0xFF;
            int hi = Trunc((x[j + 16] - min) * id + 0.5f) & 0xFF;
            block[8 + j] = (byte)((lo & 0xF) | (hi & 0xF) << 4);
            qh |= (uint)(lo >> 4 & 1) << j | (uint)(hi >> 4 & 1) << (j + 16);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(block[4..], qh);
    }
}
