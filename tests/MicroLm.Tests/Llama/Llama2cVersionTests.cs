using System.Buffers.Binary;
using System.Runtime.InteropServices;
using MicroLm.Models;
using Xunit.Abstractions;

namespace MicroLm.Tests.Llama;

/// <summary>llama2.c's versioned checkpoints ("ak42" v1 float32, v2 int8 with a group size), written
/// here from the legacy stories260K.bin in the layouts of llama2.c's export.py, then converted.</summary>
public class Llama2cVersionTests(ITestOutputHelper output)
{
    private static readonly string Bin = SharedData.Path("models", "llama2c", "stories260K.bin");
    private static readonly byte[] Tok512 = File.ReadAllBytes(SharedData.Path("models", "llama2c", "tok512.bin"));

    private sealed record Legacy(int[] Header, float[] Emb, float[] RmsAtt, float[] Wq, float[] Wk, float[] Wv, float[] Wo,
        float[] RmsFfn, float[] W1, float[] W2, float[] W3, float[] RmsFinal);

    private static Legacy ReadLegacy()
    {
        var bytes = File.ReadAllBytes(Bin);
        var h = MemoryMarshal.Cast<byte, int>(bytes.AsSpan(0, 28)).ToArray();
        int dim = h[0], hidden = h[1], L = h[2], heads = h[3], kv = h[4], vocab = h[5];
        int kvDim = dim / heads * kv;
        var f = MemoryMarshal.Cast<byte, float>(bytes.AsSpan(28)).ToArray();
        int at = 0;
        float[] Take(int n) { var r = f.AsSpan(at, n).ToArray(); at += n; return r; }
        return new Legacy(h, Take(vocab * dim), Take(L * dim), Take(L * dim * dim), Take(L * kvDim * dim), Take(L * kvDim * dim),
            Take(L * dim * dim), Take(L * dim), Take(L * hidden * dim), Take(L * dim * hidden), Take(L * hidden * dim), Take(dim));
    }

    private static byte[] Header(Legacy m, int version, int groupSize)
    {
        var header = new byte[256];
        BinaryPrimitives.WriteUInt32LittleEndian(header, 0x616b3432);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(4), version);
        for (int i = 0; i < 7; i++) BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8 + 4 * i), m.Header[i]);
        header[36] = 1; // shared classifier
        if (version == 2) BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(37), groupSize);
        return header;
    }

    private static byte[] V1(Legacy m)
    {
        var s = new MemoryStream();
        s.Write(Header(m, 1, 0));
        foreach (var t in new[] { m.RmsAtt, m.RmsFfn, m.RmsFinal, m.Emb, m.Wq, m.Wk, m.Wv, m.Wo, m.W1, m.W2, m.W3 })
            s.Write(MemoryMarshal.AsBytes(t.AsSpan()));
        return s.ToArray();
    }

    private static byte[] V2(Legacy m, int groupSize)
    {
        var s = new MemoryStream();
        s.Write(Header(m, 2, groupSize));
        foreach (var t in new[] { m.RmsAtt, m.RmsFfn, m.RmsFinal }) s.Write(MemoryMarshal.AsBytes(t.AsSpan()));
        int layers = m.Header[2];
        // export.py writes each layer's matrix as its own tensor: its quants, then its scales.
        var tensors = new List<float[]> { m.Emb };
        foreach (var all in new[] { m.Wq, m.Wk, m.Wv, m.Wo, m.W1, m.W2, m.W3 })
            for (int l = 0; l < layers; l++) tensors.Add(all.AsSpan(l * (all.Length / layers), all.Length / layers).ToArray());
        foreach (var t in tensors)
        {
            // export.py's rule: per group, scale = max|w| / 127 and q = round(w / scale).
            var q = new sbyte[t.Length];
            var scales = new float[t.Length / groupSize];
            for (int g = 0; g < scales.Length; g++)
            {
                float max = 0;
                for (int i = 0; i < groupSize; i++) max = System.Math.Max(max, System.Math.Abs(t[g * groupSize + i]));
                scales[g] = max / 127f;
                for (int i = 0; i < groupSize; i++)
                    q[g * groupSize + i] = (sbyte)(scales[g] == 0 ? 0 : System.Math.Round(t[g * groupSize + i] / scales[g]));
            }
            s.Write(MemoryMarshal.AsBytes(q.AsSpan()));
            s.Write(MemoryMarshal.AsBytes(scales.AsSpan()));
        }
        return s.ToArray();
    }

    private static float[][] Logits(byte[] checkpoint, int positions)
    {
        using var model = Model.Load(Llama2cCheckpoint.ToGguf(checkpoint, Tok512));
        using var session = model.CreateSession(64);
        var prompt = model.Tokenizer.Encode("Once upon a time there was", true);
        var rows = new List<float[]>();
        session.Evaluate(prompt.Take(positions).ToArray(), onLogits: (_, _, l) => rows.Add(l.ToArray()));
        return rows.ToArray();
    }

    [SharedFact]
    public void Version1GivesTheLegacyCheckpointsLogitsBitForBit()
    {
        var legacy = Logits(File.ReadAllBytes(Bin), 6);
        var v1 = Logits(V1(ReadLegacy()), 6);
        for (int p = 0; p < legacy.Length; p++)
            Assert.Equal(legacy[p].Select(BitConverter.SingleToInt32Bits), v1[p].Select(BitConverter.SingleToInt32Bits));
    }

    [SharedFact]
    public void Version2Int8IsReadWithItsGroupScales()
    {
        var legacy = Logits(File.ReadAllBytes(Bin), 6);
        var v2 = Logits(V2(ReadLegacy(), 32), 6);
        double worst = 0;
        for (int p = 0; p < legacy.Length; p++)
        {
            for (int i = 0; i < legacy[p].Length; i++) worst = System.Math.Max(worst, System.Math.Abs(legacy[p][i] - v2[p][i]));
            Assert.Equal(MicroLm.Math.Kernels.ArgMax(legacy[p]), MicroLm.Math.Kernels.ArgMax(v2[p]));
        }
        output.WriteLine($"int8 (group 32) vs float32 checkpoint: largest |Δlogit| = {worst:E2}");
        // Int8 with a scale per 32 weights keeps each weight within max|w|/254 of its value; over this
        // model's 5 layers that moved logits (|logit| up to ~15) by 0.20 at most (measured); 0.5 leaves room. A wrong
        // layout (order, transposition, missing scales) gives garbage, off by several units.
        Assert.True(worst < 0.5, $"largest difference {worst}");
        Assert.True(worst > 0, "int8 weights should not reproduce float32 logits exactly");
    }

    [SharedFact]
    public void TruncatedCheckpointIsAClearError()
    {
        var v1 = V1(ReadLegacy());
        var e = Assert.Throws<MicroLmException>(() => Llama2cCheckpoint.ToGguf(v1.AsMemory(0, v1.Length - 100), Tok512));
        Assert.Contains("truncated", e.Message);
    }
}
