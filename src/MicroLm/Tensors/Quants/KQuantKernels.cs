using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace MicroLm.Tensors.Quants;

// The 256-value "K" super-block formats (layouts as in ggml's ggml-common.h; f16 = IEEE half, little endian).
// A super-block is 16 sub-blocks of 16 values (Q2_K, Q3_K, Q6_K) or 8 of 32 (Q4_K, Q5_K), each with a
// small integer scale (and for Q2_K/Q4_K/Q5_K an integer min) under the block's f16 d (and dmin):
//   Q2_K (84 B):  u8 scales[16] (low nibble scale, high nibble min), u8 qs[64], f16 d, f16 dmin
//                 x = d·sc·q − dmin·m, q = 2 bits: value v is bits 2j..2j+1 of qs[32·(v/128) + v%32], j = (v%128)/32
//   Q3_K (110 B): u8 hmask[32], u8 qs[64], u8 scales[12] (16 six-bit scales, offset 32), f16 d
//                 x = d·(sc−32)·(q − 4·(1 − h)), q as in Q2_K, h = bit (4·(v/128) + j) of hmask[v%32]
//   Q4_K (144 B): f16 d, f16 dmin, u8 scales[12] (8 six-bit scales and 8 six-bit mins), u8 qs[128]
//                 x = d·sc·q − dmin·m; sub-block s = v/32 is the low (s even) or high nibble of qs[32·(s/2) + v%32]
//   Q5_K (176 B): f16 d, f16 dmin, u8 scales[12], u8 qh[32], u8 qs[128]
//                 as Q4_K with a fifth bit: bit s of qh[v%32] adds 16
//   Q6_K (210 B): u8 ql[128], u8 qh[64], i8 scales[16], f16 d
//                 x = d·sc·(q − 32), q = 4 low bits of ql[64·(v/128) + 32·(j%2) + v%32] (low nibble j < 2, else high)
//                 | 2 bits (2j) of qh[32·(v/128) + v%32] << 4, with j = (v%128)/32
// The scale of value v is sub-block v/16 (16-value types) or v/32 (32-value types).
//
// Dot products (as llama.cpp computes them): the activation is quantized to Q8_K — per 256 values an
// f32 d = 1/(−127/max) and 8-bit quants (see Q8KForm) — and per super-block the products are exact
// integers: isum = Σ_sub sc_sub · Σ q_w·q_x and, for the types with a min, imin = Σ_sub m_sub · Σ q_x.
// Then, in super-block order: sum += (d·d_x)·isum − (dmin·d_x)·imin. Integer sums are exact and the
// float steps are sequential, so the result does not depend on vector width, thread or platform.

/// <summary>Shared K-quant pieces: the f16 read, the 6-bit scale packing of Q4_K/Q5_K and of Q3_K.</summary>
internal static class KBlock
{
    public const int N = 256;

    /// <summary>Scale and min of sub-block j (0..7) of a Q4_K/Q5_K block: 8 six-bit pairs in 12 bytes.
    /// j &lt; 4: bytes j and j+4 hold them in their low 6 bits; j ≥ 4: the low/high nibbles of byte j+4 are
    /// their low 4 bits, and the top 2 bits of bytes j−4 (scale) and j (min) their high 2 bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ScaleMin(ReadOnlySpan<byte> s, int j, out int scale, out int min)
    {
        if (j < 4)
        {
            scale = s[j] & 63;
            min = s[j + 4] & 63;
        }
        else
        {
            scale = (s[j + 4] & 0xF) | (s[j - 4] >> 6) << 4;
            min = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
        }
    }

    /// <summary>Signed scale of sub-block j (0..15) of a Q3_K block: low 4 bits from the low (j &lt; 8) or
    /// high nibble of byte j%8, high 2 bits from bits 2·(j/4) of byte 8 + j%4; stored with offset 32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Q3Scale(ReadOnlySpan<byte> s, int j)
    {
        int low = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
        int high = (s[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
        return (low | high << 4) - 32;
    }

    public static void CheckLength(int n)
    {
        if (n % N != 0) throw new MicroLmException($"a K-quant matmul needs a row length that is a multiple of {N}, got {n}");
    }
}

/// <summary>An activation vector in llama.cpp's Q8_K form: per 256 values d = 1/(−127/max), where max is
/// the value of largest magnitude (sign kept, the first on ties), and q = min(127, round_even(x·(−127/max)));
/// an all-zero block has d = 0 and q = 0. Per 16 values the quant sum (for the min terms).
/// Made once per matmul input by <see cref="Activation.EnsureQ8K"/>.</summary>
internal sealed class Q8KForm
{
    public int Length { get; }
    public sbyte[] Q { get; }
    /// <summary>Per super-block d, then per 16 values Σ q, in one pinned buffer (<see cref="D"/>, <see cref="Sums16"/>)
    /// so that a compiled kernel reaches both from one address (Wasm.CompiledKernels passes it with <see cref="Q"/>).</summary>
    internal int[] Blocks { get; }
    public Span<float> D => MemoryMarshal.Cast<int, float>(Blocks.AsSpan(0, Length / KBlock.N));
    /// <summary>Σ q over each 16 values.</summary>
    public Span<int> Sums16 => Blocks.AsSpan(Length / KBlock.N);

    internal Q8KForm(int length)
    {
        KBlock.CheckLength(length);
        Length = length;
        // Pinned: a host's compiled kernels read them by address.
        Q = GC.AllocateArray<sbyte>(length, pinned: true);
        Blocks = GC.AllocateArray<int>(length / KBlock.N + length / 16, pinned: true);
    }

    /// <summary>The Q8_K form of <paramref name="values"/> (no caching).</summary>
    public static Q8KForm From(ReadOnlySpan<float> values)
    {
        var form = new Q8KForm(values.Length);
        form.Fill(values);
        return form;
    }

    internal void Fill(ReadOnlySpan<float> values)
    {
        for (int b = 0; b < Length / KBlock.N; b++)
        {
            var x = values.Slice(b * KBlock.N, KBlock.N);
            var q = Q.AsSpan(b * KBlock.N, KBlock.N);
            float max = 0, amax = 0;
            foreach (float v in x)
            {
                float a = MathF.Abs(v);
                if (a > amax) { amax = a; max = v; }
            }
            if (amax == 0)
            {
                D[b] = 0;
                q.Clear();
                Sums16.Slice(b * 16, 16).Clear();
                continue;
            }
            float iscale = -127f / max;
            for (int i = 0; i < KBlock.N; i++)
                q[i] = (sbyte)System.Math.Min(127, (int)MathF.Round(iscale * x[i])); // ties to even, as ggml's nearest_int
            for (int k = 0; k < 16; k++)
            {
                int s = 0;
                for (int i = 0; i < 16; i++) s += q[16 * k + i];
                Sums16[b * 16 + k] = s;
            }
            D[b] = 1 / iscale;
        }
    }
}

/// <summary>Base of the K-quant kernels: a dot is a sum over super-blocks of per-block terms computed
/// by <see cref="BlockDot"/> from the Q8_K form.</summary>
internal abstract class KQuantKernel : RowKernel
{
    protected abstract int BytesPerBlock { get; }

    /// <summary>This super-block's contribution given the activation's quants, per-16 sums and d.</summary>
    protected abstract float BlockDot(ReadOnlySpan<byte> block, ReadOnlySpan<sbyte> qx, ReadOnlySpan<int> sums16, float dx);

    protected abstract void DequantizeBlock(ReadOnlySpan<byte> block, Span<float> y);

    public override void Dequantize(ReadOnlySpan<byte> row, Span<float> output)
    {
        KBlock.CheckLength(output.Length);
        int bpb = BytesPerBlock;
        for (int b = 0; b < output.Length / KBlock.N; b++)
            DequantizeBlock(row.Slice(b * bpb, bpb), output.Slice(b * KBlock.N, KBlock.N));
    }

    public override bool UsesQ8KActivation => true;

    public override float Dot(ReadOnlySpan<byte> row, Activation x) =>
        Dot(row, x.Q8K ?? throw new InvalidOperationException("the activation's Q8_K form was not prepared"));

    public float Dot(ReadOnlySpan<byte> row, Q8KForm x)
    {
        int bpb = BytesPerBlock;
        float sum = 0;
        for (int b = 0; b < x.Length / KBlock.N; b++)
            sum += BlockDot(row.Slice(b * bpb, bpb), x.Q.AsSpan(b * KBlock.N, KBlock.N), x.Sums16.Slice(b * 16, 16), x.D[b]);
        return sum;
    }
}

internal sealed partial class Q2_KKernel : KQuantKernel
{
    public static readonly Q2_KKernel Instance = new();
    protected override int BytesPerBlock => 84;

    protected override void DequantizeBlock(ReadOnlySpan<byte> blk, Span<float> y)
    {
        var scales = blk[..16];
        var qs = blk.Slice(16, 64);
        float d = Block.Half(blk, 80), dmin = Block.Half(blk, 82);
        for (int s = 0; s < 16; s++)
        {
            float dl = d * (scales[s] & 0xF), ml = dmin * (scales[s] >> 4);
            int half = s >> 3, j = (s & 7) >> 1, l0 = (s & 1) * 16;
            for (int l = 0; l < 16; l++)
                y[16 * s + l] = dl * ((qs[32 * half + l0 + l] >> (2 * j)) & 3) - ml;
        }
    }

    protected override float BlockDot(ReadOnlySpan<byte> blk, ReadOnlySpan<sbyte> qx, ReadOnlySpan<int> sums16, float dx)
    {
        var scales = blk[..16];
        var qs = blk.Slice(16, 64);
        int isum = 0, imin = 0;
        for (int s = 0; s < 16; s++)
        {
            int half = s >> 3, shift = 2 * ((s & 7) >> 1), l0 = 32 * half + (s & 1) * 16;
            int a = 0;
            for (int l = 0; l < 16; l++) a += ((qs[l0 + l] >> shift) & 3) * qx[16 * s + l];
            isum += (scales[s] & 0xF) * a;
            imin += (scales[s] >> 4) * sums16[s];
        }
        return dx * Block.Half(blk, 80) * isum - dx * Block.Half(blk, 82) * imin;
    }
}

internal sealed partial class Q3_KKernel : KQuantKernel
{
    public static readonly Q3_KKernel Instance = new();
    protected override int BytesPerBlock => 110;

    protected override void DequantizeBlock(ReadOnlySpan<byte> blk, Span<float> y)
    {
        var hmask = blk[..32];
        var qs = blk.Slice(32, 64);
        var scales = blk.Slice(96, 12);
        float d = Block.Half(blk, 108);
        for (int s = 0; s < 16; s++)
        {
            float dl = d * KBlock.Q3Scale(scales, s);
            int half = s >> 3, j = (s & 7) >> 1, l0 = (s & 1) * 16, m = 1 << (4 * half + j);
            for (int l = 0; l < 16; l++)
                y[16 * s + l] = dl * (((qs[32 * half + l0 + l] >> (2 * j)) & 3) - ((hmask[l0 + l] & m) != 0 ? 0 : 4));
        }
    }

    protected override float BlockDot(ReadOnlySpan<byte> blk, ReadOnlySpan<sbyte> qx, ReadOnlySpan<int> sums16, float dx)
    {
        var hmask = blk[..32];
        var qs = blk.Slice(32, 64);
        var scales = blk.Slice(96, 12);
        int isum = 0;
        for (int s = 0; s < 16; s++)
        {
            int half = s >> 3, j = (s & 7) >> 1, l0 = (s & 1) * 16, m = 1 << (4 * half + j), shift = 2 * j;
            int a = 0;
            for (int l = 0; l < 16; l++)
                a += (((qs[32 * half + l0 + l] >> shift) & 3) - ((hmask[l0 + l] & m) != 0 ? 0 : 4)) * qx[16 * s + l];
            isum += KBlock.Q3Scale(scales, s) * a;
        }
        return dx * Block.Half(blk, 108) * isum;
    }
}

internal sealed partial class Q4_KKernel : KQuantKernel
{
    public static readonly Q4_KKernel Instance = new();
    protected override int BytesPerBlock => 144;

    protected override void DequantizeBlock(ReadOnlySpan<byte> blk, Span<float> y)
    {
        float d = Block.Half(blk, 0), dmin = Block.Half(blk, 2);
        var scales = blk.Slice(4, 12);
        var qs = blk.Slice(16, 128);
        for (int s = 0; s < 8; s++)
        {
            KBlock.ScaleMin(scales, s, out int sc, out int m);
            float dl = d * sc, ml = dmin * m;
            int at = 32 * (s >> 1), shift = 4 * (s & 1);
            for (int l = 0; l < 32; l++) y[32 * s + l] = dl * ((qs[at + l] >> shift) & 0xF) - ml;
        }
    }

    protected override float BlockDot(ReadOnlySpan<byte> blk, ReadOnlySpan<sbyte> qx, ReadOnlySpan<int> sums16, float dx)
    {
        var scales = blk.Slice(4, 12);
        var qs = blk.Slice(16, 128);
        int isum = 0, imin = 0;
        for (int c = 0; c < 4; c++)
        {
            int a0 = 0, a1 = 0;
            var q = qs.Slice(32 * c, 32);
            var x0 = qx.Slice(64 * c, 32);
            var x1 = qx.Slice(64 * c + 32, 32);
            for (int l = 0; l < 32; l++)
            {
                a0 += (q[l] & 0xF) * x0[l];
                a1 += (q[l] >> 4) * x1[l];
            }
            KBlock.ScaleMin(scales, 2 * c, out int sc0, out int m0);
            KBlock.ScaleMin(scales, 2 * c + 1, out int sc1, out int m1);
            isum += sc0 * a0 + sc1 * a1;
            imin += m0 * (sums16[4 * c] + sums16[4 * c + 1]) + m1 * (sums16[4 * c + 2] + sums16[4 * c + 3]);
        }
        return dx * Block.Half(blk, 0) * isum - dx * Block.Half(blk, 2) * imin;
    }
}

internal sealed partial class Q5_KKernel : KQuantKernel
{
    public static readonly Q5_KKernel Instance = new();
    protected override int BytesPerBlock => 176;

    protected override void DequantizeBlock(ReadOnlySpan<byte> blk, Span<float> y)
    {
        float d = Block.Half(blk, 0), dmin = Block.Half(blk, 2);
        var scales = blk.Slice(4, 12);
        var qh = blk.Slice(16, 32);
        var qs = blk.Slice(48, 128);
        for (int s = 0; s < 8; s++)
        {
            KBlock.ScaleMin(scales, s, out int sc, out int m);
            float dl = d * sc, ml = dmin * m;
            int at = 32 * (s >> 1), shift = 4 * (s & 1);
            for (int l = 0; l < 32; l++)
                y[32 * s + l] = dl * (((qs[at + l] >> shift) & 0xF) | ((qh[l] >> s) & 1) << 4) - ml;
        }
    }

    protected override float BlockDot(ReadOnlySpan<byte> blk, ReadOnlySpan<sbyte> qx, ReadOnlySpan<int> sums16, float dx)
    {
        var scales = blk.Slice(4, 12);
        var qh = blk.Slice(16, 32);
        var qs = blk.Slice(48, 128);
        int isum = 0, imin = 0;
        for (int c = 0; c < 4; c++)
        {
            int a0 = 0, a1 = 0, s0 = 2 * c, s1 = 2 * c + 1;
            var q = qs.Slice(32 * c, 32);
            var x0 = qx.Slice(64 * c, 32);
            var x1 = qx.Slice(64 * c + 32, 32);
            for (int l = 0; l < 32; l++)
            {
                a0 += ((q[l] & 0xF) | ((qh[l] >> s0) & 1) << 4) * x0[l];
                a1 += ((q[l] >> 4) | ((qh[l] >> s1) & 1) << 4) * x1[l];
            }
            KBlock.ScaleMin(scales, s0, out int sc0, out int m0);
            KBlock.ScaleMin(scales, s1, out int sc1, out int m1);
            isum += sc0 * a0 + sc1 * a1;
            imin += m0 * (sums16[4 * c] + sums16[4 * c + 1]) + m1 * (sums16[4 * c + 2] + sums16[4 * c + 3]);
        }
        return dx * Block.Half(blk, 0) * isum - dx * Block.Half(blk, 2) * imin;
    }
}

internal sealed partial class Q6_KKernel : KQuantKernel
{
    public static readonly Q6_KKernel Instance = new();
    protected override int BytesPerBlock => 210;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Value(ReadOnlySpan<byte> ql, ReadOnlySpan<byte> qh, int v)
    {
        int half = v >> 7, j = (v >> 5) & 3, l = v & 31;
        int low = (ql[64 * half + 32 * (j & 1) + l] >> (4 * (j >> 1))) & 0xF;
        int high = (qh[32 * half + l] >> (2 * j)) & 3;
        return (low | high << 4) - 32;
    }

    protected override void DequantizeBlock(ReadOnlySpan<byte> blk, Span<float> y)
    {
        var ql = blk[..128];
        var qh = blk.Slice(128, 64);
        var sc = MemoryMarshal.Cast<byte, sbyte>(blk.Slice(192, 16));
        float d = Block.Half(blk, 208);
        for (int v = 0; v < KBlock.N; v++) y[v] = d * sc[v >> 4] * Value(ql, qh, v);
    }

    protected override float BlockDot(ReadOnlySpan<byte> blk, ReadOnlySpan<sbyte> qx, ReadOnlySpan<int> sums16, float dx)
    {
        var ql = blk[..128];
        var qh = blk.Slice(128, 64);
        var sc = MemoryMarshal.Cast<byte, sbyte>(blk.Slice(192, 16));
        int isum = 0;
        for (int s = 0; s < 16; s++)
        {
            int a = 0;
            for (int v = 16 * s; v < 16 * s + 16; v++) a += Value(ql, qh, v) * qx[v];
            isum += sc[s] * a;
        }
        return dx * Block.Half(blk, 208) * isum;
    }
}
