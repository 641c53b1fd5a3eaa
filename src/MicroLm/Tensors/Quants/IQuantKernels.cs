using System.Buffers.Binary;

namespace MicroLm.Tensors.Quants;

// The non-linear 4-bit formats: each 4-bit code indexes a fixed 16-level codebook (ggml's kvalues_iq4nl)
// instead of being the level itself.
//   IQ4_NL (32 values, 18 B):  f16 d, u8 qs[16]               x = d·K[code]; codes of values 0..15 are the low
//                                                              nibbles of qs, of values 16..31 the high nibbles
//   IQ4_XS (256 values, 136 B): f16 d, u16 scales_h, u8 scales_l[4], u8 qs[128]
//                               8 sub-blocks of 32, each laid out as one IQ4_NL block's qs; sub-block s has the
//                               6-bit scale ls = nibble (s%2) of scales_l[s/2] | bits 2s..2s+1 of scales_h << 4,
//                               and x = d·(ls − 32)·K[code]
// Dots, as llama.cpp pairs them: IQ4_NL with the Q8_0 activation (like Q4_0: per block an exact integer sum,
// then sum += isum·(d·d_x) in block order), IQ4_XS with Q8_K (per super-block isum = Σ_s (ls_s − 32)·Σ K·q_x,
// then sum += (d_x·d)·isum in super-block order).

internal static class IQ4
{
    /// <summary>The IQ4_NL / IQ4_XS codebook (ggml's kvalues_iq4nl).</summary>
    public static ReadOnlySpan<sbyte> Values => [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];
}

internal sealed partial class IQ4_NLKernel : RowKernel
{
    public static readonly IQ4_NLKernel Instance = new();
    public override bool UsesQ8Activation => true;

    public override void Dequantize(ReadOnlySpan<byte> row, Span<float> output)
    {
        var k = IQ4.Values;
        for (int b = 0; b < output.Length / 32; b++)
        {
            var block = row.Slice(b * 18, 18);
            float d = Block.Half(block, 0);
            for (int i = 0; i < 16; i++)
            {
                output[b * 32 + i] = d * k[block[2 + i] & 0xF];
                output[b * 32 + i + 16] = d * k[block[2 + i] >> 4];
            }
        }
    }

    public override float Dot(ReadOnlySpan<byte> row, Activation x)
    {
        var k = IQ4.Values;
        float sum = 0;
        var q = x.Q8;
        for (int b = 0; b < x.Length / 32; b++)
        {
            var block = row.Slice(b * 18, 18);
            int o = b * 32, isum = 0;
            for (int i = 0; i < 16; i++)
                isum += k[block[2 + i] & 0xF] * q[o + i] + k[block[2 + i] >> 4] * q[o + i + 16];
            sum += isum * (Block.Half(block, 0) * x.Q8Scales[b]);
        }
        return sum;
    }
}

internal sealed partial class IQ4_XSKernel : KQuantKernel
{
    public static readonly IQ4_XSKernel Instance = new();
    protected override int BytesPerBlock => 136;

    private static int Scale(ReadOnlySpan<byte> blk, ushort scalesH, int s) =>
        ((blk[4 + (s >> 1)] >> (4 * (s & 1))) & 0xF | ((scalesH >> (2 * s)) & 3) << 4) - 32;

    protected override void DequantizeBlock(ReadOnlySpan<byte> blk, Span<float> y)
    {
        var k = IQ4.Values;
        float d = Block.Half(blk, 0);
        ushort scalesH = BinaryPrimitives.ReadUInt16LittleEndian(blk[2..]);
        for (int s = 0; s < 8; s++)
        {
            float dl = d * Scale(blk, scalesH, s);
            var qs = blk.Slice(8 + 16 * s, 16);
            for (int i = 0; i < 16; i++)
            {
                y[32 * s + i] = dl * k[qs[i] & 0xF];
                y[32 * s + i + 16] = dl * k[qs[i] >> 4];
            }
        }
    }

    protected override float BlockDot(ReadOnlySpan<byte> blk, ReadOnlySpan<sbyte> qx, ReadOnlySpan<int> sums16, float dx)
    {
        var k = IQ4.Values;
        ushort scalesH = BinaryPrimitives.ReadUInt16LittleEndian(blk[2..]);
        int isum = 0;
        for (int s = 0; s < 8; s++)
        {
            var qs = blk.Slice(8 + 16 * s, 16);
            var x = qx.Slice(32 * s, 32);
            int a = 0;
            for (int i = 0; i < 16; i++) a += k[qs[i] & 0xF] * x[i] + k[qs[i] >> 4] * x[i + 16];
            isum += Scale(blk, scalesH, s) * a;
        }
        return dx * Block.Half(blk, 0) * isum;
    }
}
