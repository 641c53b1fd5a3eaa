using System.Buffers.Binary;
using MicroLm.Gguf;
using MicroLm.Math;
using MicroLm.Models;
using MicroLm.Synthetic;
using MicroLm.Tensors;
using MicroLm.Tensors.Quants;

namespace MicroLm.Tests.Quants;

/// <summary>Blocks of the K-quant and IQ4 formats built here from chosen integer quants and scales,
/// packed the way ggml's reference quantizers pack them (a different walk over the bytes than our
/// decoders take), with the value each must decode to.</summary>
internal static class KBlocks
{
    public static readonly GgmlType[] Types =
        [GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.IQ4_XS, GgmlType.IQ4_NL];

    public static readonly sbyte[] Codebook = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

    private static void Half(byte[] b, int at, float f) => BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(at), Quantizer.ToHalfBits(f));

    /// <summary>A random block of <paramref name="type"/> (256 values; 32 for IQ4_NL) with d and dmin
    /// drawn from <paramref name="rng"/> (F16-exact), and the floats it stands for.</summary>
    public static (byte[] Block, float[] Values) Random(GgmlType type, Random rng)
    {
        float d = (float)(Half)(float)(rng.NextDouble() * 0.02 + 0.001);
        float dmin = (float)(Half)(float)(rng.NextDouble() * 0.01);
        int[] R(int n, int lo, int hi) { var a = new int[n]; for (int i = 0; i < n; i++) a[i] = rng.Next(lo, hi + 1); return a; }
        return type switch
        {
            GgmlType.Q2_K => Q2K(R(256, 0, 3), R(16, 0, 15), R(16, 0, 15), d, dmin),
            GgmlType.Q3_K => Q3K(R(256, -4, 3), R(16, -32, 31), d),
            GgmlType.Q4_K => Q45K(false, R(256, 0, 15), R(8, 0, 63), R(8, 0, 63), d, dmin),
            GgmlType.Q5_K => Q45K(true, R(256, 0, 31), R(8, 0, 63), R(8, 0, 63), d, dmin),
            GgmlType.Q6_K => Q6K(R(256, -32, 31), R(16, -128, 127), d),
            GgmlType.IQ4_XS => IQ4XS(R(256, 0, 15), R(8, 0, 63), d),
            GgmlType.IQ4_NL => IQ4NL(R(32, 0, 15), d),
            _ => throw new ArgumentException(type.ToString()),
        };
    }

    // x = d·sc·q − dmin·m; quants of 128 values share bytes: value j+32k in bits 2k of byte j/…
    public static (byte[], float[]) Q2K(int[] q, int[] sc, int[] m, float d, float dmin)
    {
        var b = new byte[84];
        for (int s = 0; s < 16; s++) b[s] = (byte)(sc[s] | m[s] << 4);
        for (int j = 0; j < 256; j += 128)
            for (int l = 0; l < 32; l++)
                b[16 + j / 4 + l] = (byte)(q[j + l] | q[j + l + 32] << 2 | q[j + l + 64] << 4 | q[j + l + 96] << 6);
        Half(b, 80, d); Half(b, 82, dmin);
        var v = new float[256];
        for (int i = 0; i < 256; i++) v[i] = d * sc[i / 16] * q[i] - dmin * m[i / 16];
        return (b, v);
    }

    // q in −4..3 stored as q+4: high bit in hmask (bit i/32 of byte i%32), low 2 bits as Q2_K; scales − 32 in 6 bits.
    public static (byte[], float[]) Q3K(int[] q, int[] sc, float d)
    {
        var b = new byte[110];
        var low = new int[256];
        for (int i = 0; i < 256; i++)
        {
            int u = q[i] + 4;
            if (u > 3) b[i % 32] |= (byte)(1 << (i / 32));
            low[i] = u & 3;
        }
        for (int j = 0; j < 256; j += 128)
            for (int l = 0; l < 32; l++)
                b[32 + j / 4 + l] = (byte)(low[j + l] | low[j + l + 32] << 2 | low[j + l + 64] << 4 | low[j + l + 96] << 6);
        for (int j = 0; j < 16; j++)
        {
            int ls = sc[j] + 32;
            if (j < 8) b[96 + j] = (byte)(ls & 0xF); else b[96 + j - 8] |= (byte)((ls & 0xF) << 4);
            b[96 + 8 + j % 4] |= (byte)((ls >> 4) << (2 * (j / 4)));
        }
        Half(b, 108, d);
        var v = new float[256];
        for (int i = 0; i < 256; i++) v[i] = d * sc[i / 16] * q[i];
        return (b, v);
    }

    public static (byte[], float[]) Q45K(bool five, int[] q, int[] sc, int[] m, float d, float dmin)
    {
        var b = new byte[five ? 176 : 144];
        Half(b, 0, d); Half(b, 2, dmin);
        for (int j = 0; j < 8; j++)
        {
            if (j < 4) { b[4 + j] = (byte)sc[j]; b[4 + j + 4] = (byte)m[j]; }
            else
            {
                b[4 + j + 4] = (byte)((sc[j] & 0xF) | (m[j] & 0xF) << 4);
                b[4 + j - 4] |= (byte)((sc[j] >> 4) << 6);
                b[4 + j] |= (byte)((m[j] >> 4) << 6);
            }
        }
        int qsAt = five ? 48 : 16;
        for (int j = 0, c = 0; j < 256; j += 64, c++)
            for (int l = 0; l < 32; l++)
            {
                b[qsAt + 32 * c + l] = (byte)((q[j + l] & 0xF) | (q[j + l + 32] & 0xF) << 4);
                if (five)
                {
                    if (q[j + l] > 15) b[16 + l] |= (byte)(1 << (2 * c));
                    if (q[j + l + 32] > 15) b[16 + l] |= (byte)(2 << (2 * c));
                }
            }
        var v = new float[256];
        for (int i = 0; i < 256; i++) v[i] = d * sc[i / 32] * q[i] - dmin * m[i / 32];
        return (b, v);
    }

    public static (byte[], float[]) Q6K(int[] q, int[] sc, float d)
    {
        var b = new byte[210];
        for (int j = 0, n = 0; j < 256; j += 128, n++)
            for (int l = 0; l < 32; l++)
            {
                int q1 = q[j + l] + 32, q2 = q[j + l + 32] + 32, q3 = q[j + l + 64] + 32, q4 = q[j + l + 96] + 32;
                b[64 * n + l] = (byte)((q1 & 0xF) | (q3 & 0xF) << 4);
                b[64 * n + l + 32] = (byte)((q2 & 0xF) | (q4 & 0xF) << 4);
                b[128 + 32 * n + l] = (byte)(q1 >> 4 | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6);
            }
        for (int s = 0; s < 16; s++) b[192 + s] = (byte)(sbyte)sc[s];
        Half(b, 208, d);
        var v = new float[256];
        for (int i = 0; i < 256; i++) v[i] = d * sc[i / 16] * q[i];
        return (b, v);
    }

    public static (byte[], float[]) IQ4XS(int[] code, int[] ls, float d)
    {
        var b = new byte[136];
        Half(b, 0, d);
        ushort h = 0;
        for (int s = 0; s < 8; s++)
        {
            b[4 + s / 2] |= (byte)((ls[s] & 0xF) << (4 * (s % 2)));
            h |= (ushort)((ls[s] >> 4) << (2 * s));
            for (int j = 0; j < 16; j++) b[8 + 16 * s + j] = (byte)(code[32 * s + j] | code[32 * s + 16 + j] << 4);
        }
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(2), h);
        var v = new float[256];
        for (int i = 0; i < 256; i++) v[i] = d * (ls[i / 32] - 32) * Codebook[code[i]];
        return (b, v);
    }

    public static (byte[], float[]) IQ4NL(int[] code, float d)
    {
        var b = new byte[18];
        Half(b, 0, d);
        for (int j = 0; j < 16; j++) b[2 + j] = (byte)(code[j] | code[j + 16] << 4);
        var v = new float[32];
        for (int i = 0; i < 32; i++) v[i] = d * Codebook[code[i]];
        return (b, v);
    }

    /// <summary>A row of <paramref name="n"/> values made of random blocks.</summary>
    public static (byte[] Row, float[] Values) Row(GgmlType type, int n, Random rng)
    {
        var info = TensorTypes.Get(type);
        var row = new byte[info.RowBytes(n)];
        var values = new float[n];
        for (int b = 0; b < n / info.BlockSize; b++)
        {
            var (block, v) = Random(type, rng);
            block.CopyTo(row, b * info.BytesPerBlock);
            v.CopyTo(values, b * info.BlockSize);
        }
        return (row, values);
    }
}

public class KQuantTests
{
    public static TheoryData<GgmlType> Types => new(KBlocks.Types);

    private static Activation Act(float[] x)
    {
        var a = new Activation(x.Length);
        x.CopyTo(a.Values);
        a.Invalidate();
        a.EnsureQ8();
        if (x.Length % 256 == 0) a.EnsureQ8K(); // what WeightMatrix.Prepare does before a K-quant matmul
        return a;
    }

    private static float[] RandomVector(int n, Random rng)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 2 - 1) * (i % 37 == 0 ? 4 : 1);
        return x;
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Hand_built_blocks_decode_to_exactly_their_values(GgmlType type)
    {
        var rng = new Random(100 + (int)type);
        var (row, expected) = KBlocks.Row(type, 1024, rng);
        var y = new float[expected.Length];
        TensorTypes.Get(type).Kernel!.Dequantize(row, y);
        for (int i = 0; i < y.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(y[i]), $"{type} value {i}: {y[i]}, expected {expected[i]}");
    }

    [Fact]
    public void Chosen_values_decode_as_the_formats_say()
    {
        // Q4_K: sub-block 5 (scale/min packed in the high-bit form) with scale 37, min 50; d = 0.5, dmin = 0.25.
        int[] sc = [1, 2, 3, 4, 5, 37, 7, 8], m = [0, 0, 0, 0, 0, 50, 0, 0];
        var q = new int[256]; q[5 * 32 + 3] = 9;
        var (b, _) = KBlocks.Q45K(false, q, sc, m, 0.5f, 0.25f);
        var y = new float[256];
        Q4_KKernel.Instance.Dequantize(b, y);
        Assert.Equal(0.5f * 37 * 9 - 0.25f * 50, y[5 * 32 + 3]);
        Assert.Equal(-0.25f * 50, y[5 * 32 + 4]);

        // Q6_K: the most negative quant (−32) with scale −128: d·(−128)·(−32).
        var q6 = new int[256]; q6[200] = -32;
        var sc6 = new int[16]; sc6[200 / 16] = -128;
        var (b6, _) = KBlocks.Q6K(q6, sc6, 0.125f);
        Q6_KKernel.Instance.Dequantize(b6, y);
        Assert.Equal(512f, y[200]);
        Assert.Equal(0f, y[199]); // quant −32 (stored 0) × scale 0

        // Q3_K: quant −4 (high bit clear) under scale −32 → d·128; quant 3 → d·(−96).
        var q3 = new int[256]; q3[70] = -4; q3[71] = 3;
        var sc3 = new int[16]; sc3[70 / 16] = -32;
        var (b3, _) = KBlocks.Q3K(q3, sc3, 1f);
        Q3_KKernel.Instance.Dequantize(b3, y);
        Assert.Equal(128f, y[70]);
        Assert.Equal(-96f, y[71]);

        // IQ4_XS: code 0 (−127) under ls = 63 (scale +31).
        var code = new int[256]; code[255] = 0; for (int i = 0; i < 255; i++) code[i] = 8; // code 8 is level 1
        var ls = new int[8]; ls[7] = 63;
        var (bx, _) = KBlocks.IQ4XS(code, ls, 2f);
        IQ4_XSKernel.Instance.Dequantize(bx, y);
        Assert.Equal(2f * 31 * -127, y[255]);
        Assert.Equal(2f * 31 * 1, y[254]);
        Assert.Equal(2f * -32 * 1, y[0]);
    }

    [Fact]
    public void Q8K_form_follows_llama_cpp()
    {
        var x = new float[512];
        x[3] = -2f; x[4] = 2f;       // largest magnitude −2 (first seen): iscale = 63.5, d = 1/63.5
        x[5] = 1f / 127f;            // 0.5 → ties to even: 0
        x[6] = 3f / 127f;            // 1.5 → 2
        x[7] = 1f;                   // 63.5 → 64 (even)
        var f = Q8KForm.From(x);
        Assert.Equal(1f / (-127f / -2f), f.D[0]);
        Assert.Equal(-127, f.Q[3]);
        Assert.Equal(127, f.Q[4]);
        Assert.Equal(0, f.Q[5]);
        Assert.Equal(2, f.Q[6]);
        Assert.Equal(64, f.Q[7]);
        Assert.Equal(-127 + 127 + 0 + 2 + 64, f.Sums16[0]);
        Assert.Equal(0f, f.D[1]);       // the all-zero second block
        Assert.All(f.Q[256..], q => Assert.Equal(0, q));
    }

    /// <summary>The dot equals the exact (double) dot of the decoded row with the Q8_K-decoded activation
    /// (Q8_0 for IQ4_NL) up to float rounding of the per-block combination, and stays within the
    /// activation's quantization error of the float dot.</summary>
    [Theory]
    [MemberData(nameof(Types))]
    public void Dot_is_the_exact_dot_with_the_quantized_activation(GgmlType type)
    {
        var rng = new Random(200 + (int)type);
        const int n = 1024;
        var kernel = TensorTypes.Get(type).Kernel!;
        for (int trial = 0; trial < 20; trial++)
        {
            var (row, w) = KBlocks.Row(type, n, rng);
            var x = RandomVector(n, rng);
            var a = Act(x);
            float dot = kernel.Dot(row, a);
            double exact = 0, magnitude = 0, real = 0;
            if (type == GgmlType.IQ4_NL)
                for (int i = 0; i < n; i++) { double xi = (double)a.Q8Scales[i / 32] * a.Q8[i]; exact += w[i] * xi; magnitude += System.Math.Abs(w[i] * xi); }
            else
            {
                var f = Q8KForm.From(x);
                for (int i = 0; i < n; i++) { double xi = (double)f.D[i / 256] * f.Q[i]; exact += w[i] * xi; magnitude += System.Math.Abs(w[i] * xi); }
            }
            for (int i = 0; i < n; i++) real += (double)w[i] * x[i];
            Assert.True(System.Math.Abs(dot - exact) <= 1e-6 * magnitude, $"{type}: {dot} vs exact {exact} (Σ|·| {magnitude})");
            Assert.True(System.Math.Abs(dot - real) <= 0.02 * magnitude, $"{type}: {dot} vs float dot {real}");
        }
    }

    [Fact]
    public void Changing_the_activation_values_is_noticed()
    {
        var rng = new Random(7);
        var (row, _) = KBlocks.Row(GgmlType.Q4_K, 512, rng);
        var a = Act(RandomVector(512, rng));
        float first = Q4_KKernel.Instance.Dot(row, a);
        Assert.Equal(first, Q4_KKernel.Instance.Dot(row, a));
        var other = RandomVector(512, rng);
        other.CopyTo(a.Values);
        a.Invalidate();
        a.EnsureQ8K();
        Assert.Equal(Q4_KKernel.Instance.Dot(row, Q8KForm.From(other)), Q4_KKernel.Instance.Dot(row, a));
        Assert.NotEqual(first, Q4_KKernel.Instance.Dot(row, a));
    }

    [Fact]
    public void K_quant_rows_need_whole_super_blocks()
    {
        var a = Act(new float[96]);
        var e = Assert.Throws<MicroLmException>(() => { a.EnsureQ8K(); Q4_KKernel.Instance.Dot(new byte[144], a); });
        Assert.Contains("256", e.Message);
    }

    [Theory]
    [InlineData(GgmlType.IQ2_XXS)]
    [InlineData(GgmlType.TQ1_0)]
    [InlineData(GgmlType.IQ3_S)]
    public void Unsupported_tensor_type_is_named_with_its_tensor(GgmlType type)
    {
        var bytes = KQuantModels.Rewrite(KQuantModels.Source, (name, t) => name == "blk.1.ffn_up.weight" ? type : t);
        var e = Assert.Throws<MicroLmException>(() => Model.Load(bytes));
        Assert.Contains("blk.1.ffn_up.weight", e.Message);
        Assert.Contains(TensorTypes.Get(type).Name, e.Message);
    }
}

/// <summary>A small model whose matrices are random K-quant/IQ4 blocks: runs through the whole forward pass.</summary>
internal static class KQuantModels
{
    public static readonly SyntheticLlamaOptions Source = new()
    {
        Dim = 256, HiddenDim = 512, Layers = 2, Heads = 4, KvHeads = 2, VocabSize = 320, Seed = 41,
    };

    /// <summary>The F32 synthetic model with each matrix's type chosen by <paramref name="typeOf"/>;
    /// K-quant/IQ4 matrices get random blocks, other types keep the bytes only if F32 (else random bytes).</summary>
    public static byte[] Rewrite(SyntheticLlamaOptions o, Func<string, GgmlType, GgmlType> typeOf)
    {
        using var f = GgufFile.FromMemory(SyntheticLlama.ToBytes(o));
        var w = new GgufWriter();
        foreach (var (key, value) in f.Metadata) w.Add(key, value.Type, value.ToObject());
        var rng = new Random(5);
        foreach (var t in f.Tensors)
        {
            var type = t.Shape.Length > 1 ? typeOf(t.Name, t.Type.Type) : t.Type.Type;
            byte[] data;
            if (type == t.Type.Type) data = f.GetTensorData(t).ToArray();
            else if (KBlocks.Types.Contains(type))
            {
                var info = TensorTypes.Get(type);
                var rows = new List<byte>();
                for (long r = 0; r < t.Shape[1]; r++) rows.AddRange(KBlocks.Row(type, (int)t.Shape[0], rng).Row);
                data = rows.ToArray();
            }
            else
            {
                data = new byte[TensorTypes.Get(type).RowBytes(t.Shape[0]) * t.Shape[1]];
                rng.NextBytes(data);
            }
            w.AddTensor(t.Name, type, t.Shape, data);
        }
        return w.ToArray();
    }

    /// <summary>Each kind of matrix a different type, so one run covers all seven.</summary>
    public static GgmlType Mix(string name, GgmlType _) => name switch
    {
        _ when name.EndsWith("attn_q.weight") => GgmlType.Q2_K,
        _ when name.EndsWith("attn_k.weight") => GgmlType.Q3_K,
        _ when name.EndsWith("attn_v.weight") => GgmlType.Q5_K,
        _ when name.EndsWith("attn_output.weight") => GgmlType.IQ4_NL,
        _ when name.EndsWith("ffn_gate.weight") => GgmlType.Q4_K,
        _ when name.EndsWith("ffn_up.weight") => GgmlType.IQ4_XS,
        _ when name.EndsWith("ffn_down.weight") => GgmlType.Q6_K,
        "token_embd.weight" => GgmlType.Q4_K,
        "output.weight" => GgmlType.Q6_K,
        _ => GgmlType.F32,
    };
}

/// <summary>Whole-model runs with K-quant weights: same bits at every vector width and thread count.</summary>
[Collection("Global kernel switches")]
public class KQuantModelDeterminismTests
{
    private static float[][] Run(byte[] model, int threads)
    {
        using var m = Model.Load(model);
        using var s = m.CreateSession(contextLength: 16, threads: threads, maxBatch: 8);
        var logits = new List<float[]>();
        s.Evaluate([1, 17, 42, 99, 5, 250, 3], onLogits: (_, _, l) => logits.Add(l.ToArray()));
        s.Evaluate([77], onLogits: (_, _, l) => logits.Add(l.ToArray()));
        return logits.ToArray();
    }

    [Fact]
    public void Every_vector_width_and_thread_count_gives_the_same_logits()
    {
        var model = KQuantModels.Rewrite(KQuantModels.Source, KQuantModels.Mix);
        var reference = Run(model, 1);
        Assert.All(reference, l => Assert.True(Kernels.AllFinite(l)));
        int saved = Kernels.VectorBits;
        try
        {
            foreach (int bits in new[] { 0, 128, 256, 512 })
            {
                if (bits > saved && bits > 128) continue;
                Kernels.VectorBits = bits;
                foreach (int threads in new[] { 1, 3 })
                {
                    var other = Run(model, threads);
                    for (int p = 0; p < reference.Length; p++)
                        Assert.True(reference[p].AsSpan().SequenceEqual(other[p]), $"position {p} differs at {bits} bits, {threads} threads");
                }
            }
        }
        finally { Kernels.VectorBits = saved; }
    }
}
