using MicroLm.Cli;
using MicroLm.Generation;
using MicroLm.Models;
using MicroLm.Synthetic;

namespace MicroLm.Tests.Sessions;

/// <summary>KV cache element types: FP8 E4M3 rounding, and the same bits for any thread count and batch.</summary>
public sealed class KvCacheTypeTests
{
    /// <summary>Every float's E4M3 code is the nearest representable value (ties to the even code),
    /// saturating at ±448, NaN kept — checked against a brute-force search over the 254 finite codes.</summary>
    [Fact]
    public void Fp8_encode_is_round_to_nearest_even_and_saturating()
    {
        var finite = Enumerable.Range(0, 256).Where(c => (c & 0x7F) != 0x7F).Select(c => (Code: (byte)c, Value: Decode((byte)c))).ToArray();
        var rng = new Random(5);
        var samples = new List<float> { 0f, -0f, 448f, -448f, 449f, 464f, 480f, 1e9f, float.PositiveInfinity, float.NegativeInfinity, 1f / 1024, 3f / 1024, 0.015625f, 0.0009765625f };
        for (int i = 0; i < 20000; i++) samples.Add(BitConverter.Int32BitsToSingle(rng.Next()) is var f && float.IsFinite(f) && MathF.Abs(f) < 1000 ? f : (float)(rng.NextDouble() * 900 - 450));
        foreach (var c in finite) samples.Add(c.Value); // exact values and the midpoints between neighbours
        var sorted = finite.Select(c => c.Value).Where(v => v >= 0).Distinct().Order().ToArray();
        for (int i = 0; i + 1 < sorted.Length; i++) { samples.Add((sorted[i] + sorted[i + 1]) / 2); samples.Add(-(sorted[i] + sorted[i + 1]) / 2); }
        foreach (float x in samples)
        {
            byte got = Fp8KvStorage.Encode(x);
            float clamped = System.Math.Clamp(x, -448f, 448f);
            double best = finite.Min(c => System.Math.Abs((double)c.Value - clamped));
            var nearest = finite.Where(c => System.Math.Abs((double)c.Value - clamped) == best && (c.Value != 0 || (BitConverter.SingleToInt32Bits(x) < 0) == ((c.Code & 0x80) != 0))).ToArray();
            byte want = nearest.Length == 1 ? nearest[0].Code : nearest.First(c => (c.Code & 1) == 0).Code;
            Assert.True(got == want, $"E4M3({x:R}) = 0x{got:X2} ({Decode(got)}), expected 0x{want:X2} ({Decode(want)})");
        }
        Assert.True(float.IsNaN(Decode(Fp8KvStorage.Encode(float.NaN))));
    }

    private static float Decode(byte c)
    {
        int e = (c >> 3) & 0xF, m = c & 7;
        double v = e == 15 && m == 7 ? double.NaN : e == 0 ? m / 512.0 : (1 + m / 8.0) * System.Math.Pow(2, e - 7);
        return (float)((c & 0x80) != 0 ? -v : v);
    }

    [Theory]
    [InlineData("f16")]
    [InlineData("bf16")]
    [InlineData("q8_0")]
    [InlineData("fp8")]
    public void Same_bits_for_any_thread_count_and_batch(string type)
    {
        var bytes = SyntheticLlama.ToBytes(new SyntheticLlamaOptions { Dim = 128, HiddenDim = 256, Layers = 2, Heads = 4, KvHeads = 2, VocabSize = 320, Seed = 4 });
        using var model = Model.Load(bytes);
        var k = KvStorageTypes.Parse(type, "-ctk");
        int[] tokens = [1, 17, 99, 5, 250, 31, 7, 8, 300, 42, 11, 12];
        float[] Run(int threads, int batch)
        {
            using var s = new Session(model, 32, threads, batch, k, k);
            var all = new List<float>();
            s.Evaluate(tokens, batch, (_, _, l) => all.AddRange(l.ToArray()));
            foreach (int t in new[] { 3, 9 }) all.AddRange(s.Evaluate([t]).ToArray());
            Assert.Equal(type, ((KvCache)s.Memory[0]).Keys.TypeName);
            return [.. all];
        }
        var a = Run(1, 12);
        Assert.Equal(a, Run(2, 5));
        Assert.Equal(a, Run(3, 1));
        using var f32 = new Session(model, 32, 1, 12);
        Assert.NotEqual(a.AsSpan(..320).ToArray(), new float[320]);
    }

    [SharedFact]
    public void Unknown_cache_type_is_one_clear_error()
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = CliMain.Run(["run", "-m", SharedData.Path("models", "gguf", "stories260K-F32.gguf"), "-p", "Once", "-n", "2", "-ctk", "q4_0"], o, e);
        Assert.Equal(1, code);
        Assert.StartsWith("microlm: error: --cache-type-k: unknown KV cache type 'q4_0' (known: f32, f16, bf16, q8_0, fp8)", e.ToString());
    }
}
