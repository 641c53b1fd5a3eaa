using System.Buffers.Binary;
using MicroLm.Math;
using MicroLm.Tensors.Quants;

namespace MicroLm.Models;

/// <summary>The KV cache element types of --cache-type-k / --cache-type-v (llama.cpp's names; fp8 is
/// E4M3). A row is rounded once when it is written; attention decodes it to F32 and computes exactly what
/// the F32 storage computes on the decoded values (one <see cref="Kernels.Dot"/> per score; the weighted
/// sum adds w·row in increasing row order per element), so every type gives the same bits on every
/// platform, vector width and thread count.</summary>
internal static class KvStorageTypes
{
    public static readonly string[] Names = ["f32", "f16", "bf16", "q8_0", "fp8"];

    /// <summary>The storage factory for a type name (case-insensitive), or null if unknown.</summary>
    public static KvStorage.Factory? Find(string name) => name.ToLowerInvariant() switch
    {
        "f32" => KvStorage.F32,
        "f16" => (h, r, d) => new F16KvStorage(h, r, d),
        "bf16" => (h, r, d) => new BF16KvStorage(h, r, d),
        "q8_0" => (h, r, d) => new Q8_0KvStorage(h, r, d),
        "fp8" or "e4m3" or "fp8_e4m3" => (h, r, d) => new Fp8KvStorage(h, r, d),
        _ => null,
    };

    /// <summary>The factory for <paramref name="name"/>, or a one-line error naming the known types.</summary>
    public static KvStorage.Factory Parse(string name, string flag) =>
        Find(name) ?? throw new MicroLmException($"{flag}: unknown KV cache type '{name}' (known: {string.Join(", ", Names)})");

    /// <summary>Bytes of one row of <paramref name="headDim"/> values in <paramref name="name"/>.</summary>
    public static long RowBytes(string name, int headDim) => name.ToLowerInvariant() switch
    {
        "f32" => 4L * headDim,
        "f16" or "bf16" => 2L * headDim,
        "q8_0" => headDim / 32 * 34L,
        _ => headDim,
    };
}

/// <summary>Shared shape of the rounded storages: decode a row into F32, then the F32 reductions.</summary>
internal abstract class DecodedKvStorage(int heads, int rows, int headDim) : KvStorage(heads, rows, headDim)
{
    protected int Index(int head, int row) => head * Rows + row;

    /// <summary>Decodes row <paramref name="index"/> (head·Rows + row) into <paramref name="x"/> (headDim values).</summary>
    protected abstract void Decode(int index, Span<float> x);

    public override void Scores(int head, ReadOnlySpan<float> q, int first, float scale, Span<float> scores)
    {
        Span<float> row = HeadDim <= 512 ? stackalloc float[HeadDim] : new float[HeadDim];
        int at = Index(head, first);
        for (int t = 0; t < scores.Length; t++)
        {
            Decode(at + t, row);
            scores[t] = Kernels.Dot(q, row) * scale;
        }
    }

    public override void WeightedSum(int head, ReadOnlySpan<float> weights, int first, Span<float> output)
    {
        Span<float> row = HeadDim <= 512 ? stackalloc float[HeadDim] : new float[HeadDim];
        int at = Index(head, first), n = HeadDim;
        output[..n].Clear();
        for (int t = 0; t < weights.Length; t++)
        {
            Decode(at + t, row);
            float w = weights[t];
            for (int j = 0; j < n; j++) output[j] += w * row[j];
        }
    }
}

/// <summary>Two bytes a value; <typeparamref name="TBits"/> says how a float becomes 16 bits and back (a struct, so
/// each format's loops are compiled with its conversion inlined).</summary>
internal abstract class SixteenBitKvStorage<TBits>(int heads, int rows, int headDim) : DecodedKvStorage(heads, rows, headDim)
    where TBits : struct, ISixteenBits
{
    private readonly ushort[] _data = new ushort[checked((long)heads * rows * headDim)];
    public override long Bytes => 2L * _data.Length;

    public override void Write(int head, int row, ReadOnlySpan<float> x)
    {
        var d = _data.AsSpan(Index(head, row) * HeadDim, HeadDim);
        for (int j = 0; j < d.Length; j++) d[j] = TBits.FromFloat(x[j]);
    }

    protected override void Decode(int index, Span<float> x)
    {
        var d = _data.AsSpan(index * HeadDim, HeadDim);
        for (int j = 0; j < d.Length; j++) x[j] = TBits.ToFloat(d[j]);
    }
}

internal interface ISixteenBits
{
    static abstract ushort FromFloat(float x);
    static abstract float ToFloat(ushort bits);
}

/// <summary>IEEE half precision, rounded to nearest even (overflow to ±inf, as llama.cpp's F16 cache).</summary>
internal sealed class F16KvStorage(int heads, int rows, int headDim) : SixteenBitKvStorage<F16KvStorage.Bits>(heads, rows, headDim)
{
    public override string TypeName => "f16";

    internal readonly struct Bits : ISixteenBits
    {
        public static ushort FromFloat(float x) => Quantizer.ToHalfBits(x);
        public static float ToFloat(ushort bits) => (float)BitConverter.UInt16BitsToHalf(bits);
    }
}

/// <summary>bfloat16: the upper half of the F32 bits, rounded to nearest even.</summary>
internal sealed class BF16KvStorage(int heads, int rows, int headDim) : SixteenBitKvStorage<BF16KvStorage.Bits>(heads, rows, headDim)
{
    public override string TypeName => "bf16";

    internal readonly struct Bits : ISixteenBits
    {
        public static ushort FromFloat(float x) => Quantizer.ToBFloat16Bits(x);
        public static float ToFloat(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);
    }
}

/// <summary>Q8_0 blocks along the head dimension (34 bytes per 32 values), by ggml's reference rule.</summary>
internal sealed class Q8_0KvStorage : DecodedKvStorage
{
    private readonly byte[] _data;
    private readonly int _rowBytes;

    public Q8_0KvStorage(int heads, int rows, int headDim) : base(heads, rows, headDim)
    {
        if (headDim % 32 != 0)
            throw new MicroLmException($"a q8_0 KV cache needs a head size that is a multiple of 32; this model's is {headDim} (use f16, bf16 or fp8)");
        _rowBytes = headDim / 32 * 34;
        _data = new byte[checked((long)heads * rows * _rowBytes)];
    }

    public override long Bytes => _data.Length;
    public override string TypeName => "q8_0";

    public override void Write(int head, int row, ReadOnlySpan<float> x)
    {
        var r = _data.AsSpan(Index(head, row) * _rowBytes, _rowBytes);
        for (int b = 0; b < HeadDim / 32; b++) Quantizer.EncodeQ8_0(x.Slice(b * 32, 32), r.Slice(b * 34, 34));
    }

    protected override void Decode(int index, Span<float> x)
    {
        var r = _data.AsSpan(index * _rowBytes, _rowBytes);
        for (int b = 0; b < HeadDim / 32; b++)
        {
            var blk = r.Slice(b * 34, 34);
            float d = (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(blk));
            for (int j = 0; j < 32; j++) x[b * 32 + j] = (sbyte)blk[2 + j] * d;
        }
    }
}

/// <summary>FP8 E4M3 (OCP "E4M3FN": 4 exponent bits with bias 7, 3 mantissa bits, no infinities, one NaN
/// pattern S.1111.111): round to nearest even, saturating at ±448.</summary>
internal sealed class Fp8KvStorage(int heads, int rows, int headDim) : DecodedKvStorage(heads, rows, headDim)
{
    private readonly byte[] _data = new byte[checked((long)heads * rows * headDim)];
    private static readonly float[] Table = BuildTable();

    public override long Bytes => _data.Length;
    public override string TypeName => "fp8";

    public override void Write(int head, int row, ReadOnlySpan<float> x)
    {
        var d = _data.AsSpan(Index(head, row) * HeadDim, HeadDim);
        for (int j = 0; j < d.Length; j++) d[j] = Encode(x[j]);
    }

    protected override void Decode(int index, Span<float> x)
    {
        var d = _data.AsSpan(index * HeadDim, HeadDim);
        for (int j = 0; j < d.Length; j++) x[j] = Table[d[j]];
    }

    /// <summary>The E4M3 code of <paramref name="f"/>: round to nearest even; |f| ≥ 448 (and ±inf) saturate to ±448; NaN stays NaN.</summary>
    public static byte Encode(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        byte sign = (byte)((u >> 24) & 0x80);
        uint abs = u & 0x7fffffff;
        if (abs > 0x7f800000) return (byte)(sign | 0x7F);
        if (abs >= 0x43E00000) return (byte)(sign | 0x7E); // 448 and above (incl. inf)
        int e = (int)(abs >> 23) - 127;
        if (e < -6)
        {
            // Subnormal range: multiples of 2^-9 (exact scaling by 512, then ties to even); 8 becomes the smallest normal.
            int m = (int)MathF.Round(BitConverter.UInt32BitsToSingle(abs) * 512f, MidpointRounding.ToEven);
            return (byte)(sign | m);
        }
        uint mant = abs & 0x7fffff;
        uint m3 = mant >> 20, rest = mant & 0xFFFFF;
        if (rest > 0x80000 || (rest == 0x80000 && (m3 & 1) != 0)) m3++;
        if (m3 == 8) { m3 = 0; e++; }
        int be = e + 7;
        if (be > 15 || (be == 15 && m3 == 7)) return (byte)(sign | 0x7E);
        return (byte)(sign | be << 3 | (int)m3);
    }

    private static float[] BuildTable()
    {
        var t = new float[256];
        for (int c = 0; c < 256; c++)
        {
            int e = (c >> 3) & 0xF, m = c & 7;
            float v = (e, m) switch
            {
                (15, 7) => float.NaN,
                (0, _) => m / 512f,
                _ => (1 + m / 8f) * MathF.ScaleB(1f, e - 7),
            };
            t[c] = (c & 0x80) != 0 ? -v : v;
        }
        return t;
    }
}
