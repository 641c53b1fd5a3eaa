using MicroLm.Math;
using MicroLm.Synthetic;
using MicroLm.Tensors;

namespace MicroLm.Tests.Determinism;

/// <summary>The prefill steps outside the matmuls: the elementwise kernels give the scalar loops' bits at every vector
/// width (special values included), and a batch gives the same logits, bit for bit, with 1, 2 or 3 threads and
/// token by token — in each family and weight type, so activation forms made by the step that wrote them (not by the
/// matmul) are the same forms.</summary>
public class PrefillPathTests
{
    private static readonly float[] Specials =
    [
        0f, -0f, 1f, -1f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, float.Epsilon, -float.Epsilon,
        1.17549421e-38f, -1.0e-39f, float.MaxValue, -float.MaxValue, 3.4e38f, 1e-20f, 0.1f, -7.25f, 65504f,
        BitConverter.Int32BitsToSingle(0x7FC00001), BitConverter.Int32BitsToSingle(unchecked((int)0xFFA00000)),
    ];

    private static float[] Values(int n, int seed, bool specials)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++)
            x[i] = specials && rng.Next(4) == 0 ? Specials[rng.Next(Specials.Length)] : (float)(rng.NextDouble() * 8 - 4) * MathF.Pow(2, rng.Next(-30, 30));
        return x;
    }

    private static IEnumerable<int> Widths => new[] { 0, 128, 256, 512 }.Where(b => b <= Kernels.VectorBits || b == 0);

    private static T At<T>(int bits, Func<T> f)
    {
        int saved = Kernels.VectorBits;
        try { Kernels.VectorBits = bits; return f(); }
        finally { Kernels.VectorBits = saved; }
    }

    /// <summary>Bit for bit, except that a NaN only has to be a NaN: which operand's payload x64 keeps depends on the
    /// register order the JIT picks, and ARM64 differs again (docs/determinism.md, NaN: a NaN in the hidden state or the
    /// logits stops the evaluation, so no payload reaches a trace).</summary>
    private static void SameBits(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]) && !(float.IsNaN(expected[i]) && float.IsNaN(actual[i])))
                Assert.Fail($"{what}: element {i} is {actual[i]} (0x{BitConverter.SingleToInt32Bits(actual[i]):X8}), expected {expected[i]} (0x{BitConverter.SingleToInt32Bits(expected[i]):X8})");
    }

    private static readonly int[] Lengths = [0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 64, 100, 288, 768, 2051];

    [Fact]
    public void ElementwiseKernelsGiveTheScalarLoopsBitsAtEveryWidth()
    {
        foreach (bool specials in new[] { false, true })
        foreach (int n in Lengths)
        {
            var x = Values(n, n + 1, specials);
            var y = Values(n, n + 2, specials);
            var w = Values(n, n + 3, false);
            var b = Values(n, n + 4, false);
            // The loops the kernels had before they were vectorized: the reference for every width.
            var add = (float[])y.Clone(); for (int i = 0; i < n; i++) add[i] += x[i];
            var mul = (float[])y.Clone(); for (int i = 0; i < n; i++) mul[i] *= x[i];
            var lanes = new float[16]; for (int i = 0; i < n; i++) lanes[i & 15] += x[i];
            float sum = Kernels.ReduceLanes(lanes);
            foreach (int bits in Widths)
            {
                string at = $"n {n}, specials {specials}, {bits}-bit";
                SameBits(add, At(bits, () => { var o = (float[])y.Clone(); Kernels.Add(o, x); return o; }), $"Add, {at}");
                SameBits(mul, At(bits, () => { var o = (float[])y.Clone(); Kernels.Multiply(o, x); return o; }), $"Multiply, {at}");
                SameBits([sum], [At(bits, () => Kernels.Sum(x))], $"Sum, {at}");
                if (n == 0) continue;
                // The norms: the scalar path (0 bits) is the reference of the vector widths.
                SameBits(At(0, () => { var o = new float[n]; Kernels.RmsNorm(x, w, 1e-5f, o); return o; }),
                    At(bits, () => { var o = new float[n]; Kernels.RmsNorm(x, w, 1e-5f, o); return o; }), $"RmsNorm, {at}");
                SameBits(At(0, () => { var o = new float[n]; Kernels.LayerNorm(x, w, b, 1e-5f, o); return o; }),
                    At(bits, () => { var o = new float[n]; Kernels.LayerNorm(x, w, b, 1e-5f, o); return o; }), $"LayerNorm, {at}");
            }
        }
    }

    [Fact]
    public void NormsKeepTheirDocumentedFormula()
    {
        // The scalar path written out: w·(scale·x) for RMSNorm; ((x − mean)·scale)·w + b for LayerNorm, with the sums in the lane order.
        foreach (int n in new[] { 1, 17, 288 })
        {
            var x = Values(n, 5 * n, false); var w = Values(n, 7 * n, false); var b = Values(n, 11 * n, false);
            float scale = 1f / MathF.Sqrt(Kernels.Dot(x, x) / n + 1e-5f);
            var rms = new float[n]; for (int i = 0; i < n; i++) rms[i] = w[i] * (scale * x[i]);
            SameBits(rms, At(Kernels.VectorBits, () => { var o = new float[n]; Kernels.RmsNorm(x, w, 1e-5f, o); return o; }), $"RmsNorm n {n}");
            var lanes = new float[16]; for (int i = 0; i < n; i++) lanes[i & 15] += x[i];
            float mean = Kernels.ReduceLanes(lanes) / n;
            var centred = new float[n]; for (int i = 0; i < n; i++) centred[i] = x[i] - mean;
            float s = 1f / MathF.Sqrt(Kernels.Dot(centred, centred) / n + 1e-5f);
            var ln = new float[n]; for (int i = 0; i < n; i++) ln[i] = centred[i] * s * w[i] + b[i];
            SameBits(ln, At(Kernels.VectorBits, () => { var o = new float[n]; Kernels.LayerNorm(x, w, b, 1e-5f, o); return o; }), $"LayerNorm n {n}");
        }
    }

    [Fact]
    public void SiluTimesIsSiluThenOneRoundedProduct()
    {
        foreach (int n in Lengths)
        {
            var gate = Values(n, 3 * n + 1, true);
            var up = Values(n, 3 * n + 2, true);
            var expected = new float[n];
            for (int i = 0; i < n; i++) expected[i] = DetMath.Silu(gate[i]) * up[i];
            foreach (int bits in Widths)
                SameBits(expected, At(bits, () => { var o = new float[n]; DetMath.SiluTimes(gate, up, o); return o; }), $"SiluTimes n {n}, {bits}-bit");
        }
    }

    public static TheoryData<string, GgmlType> Models => new()
    {
        { "llama", GgmlType.F32 }, { "llama", GgmlType.Q8_0 }, { "llama", GgmlType.Q4_0 }, { "llama", GgmlType.Q4_K },
        { "falcon-h1", GgmlType.Q8_0 }, { "falcon-h1", GgmlType.F32 },
    };

    private static byte[] Bytes(string family, GgmlType type) => family switch
    {
        "llama" => SyntheticLlama.ToBytes(new SyntheticLlamaOptions { Dim = 256, HiddenDim = 512, Layers = 2, Heads = 4, KvHeads = 2, VocabSize = 300, Seed = 21, MatrixType = type }),
        _ => SyntheticFalconH1.ToBytes(new SyntheticFalconH1Options { Seed = 9, ContextLength = 160, MatrixType = type }),
    };

    private static float[] AllLogits(Model model, int threads, int batch, int[] prompt)
    {
        using var s = model.CreateSession(contextLength: 128, threads: threads, maxBatch: 64);
        var all = new List<float>();
        s.Evaluate(prompt, batch, (_, _, logits) => all.AddRange(logits.ToArray()));
        return all.ToArray();
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void BatchLogitsAreTheSameBitsAtAnyThreadCountAndBatch(string family, GgmlType type)
    {
        using var model = Model.Load(Bytes(family, type));
        var prompt = Enumerable.Range(0, 37).Select(i => (i * 53 + 7) % model.VocabSize).ToArray();
        var reference = AllLogits(model, threads: 1, batch: 0, prompt);
        Assert.Equal(prompt.Length * model.VocabSize, reference.Length);
        SameBits(reference, AllLogits(model, threads: 2, batch: 0, prompt), $"{family} {type}, 2 threads");
        SameBits(reference, AllLogits(model, threads: 3, batch: 0, prompt), $"{family} {type}, 3 threads");
        SameBits(reference, AllLogits(model, threads: 2, batch: 5, prompt), $"{family} {type}, 2 threads, batches of 5");
        SameBits(reference, AllLogits(model, threads: 1, batch: 1, prompt), $"{family} {type}, token by token");
        // The narrower widths' batch tiles (AVX2's 2 × 4 quantized passes, the 256-bit float tiles) give the same bits.
        foreach (int bits in Widths.Where(b => b is > 0 and < 512))
            SameBits(reference, At(bits, () => AllLogits(model, threads: 1, batch: 0, prompt)), $"{family} {type}, batch at {bits} bits");
    }

    [SharedTheory]
    [InlineData(GgmlType.F32)]
    [InlineData(GgmlType.Q8_0)]
    public void PythiaBatchLogitsAreTheSameBitsAtAnyThreadCount(GgmlType type)
    {
        var options = SyntheticGptNeoX.Pythia("14M", GptNeoX.Pythia14MFixture.TokenizerFile, type, seed: 5) with { ContextLength = 128, Layers = 2 };
        using var model = Model.Load(SyntheticGptNeoX.ToBytes(options));
        var prompt = Enumerable.Range(0, 29).Select(i => (i * 997 + 3) % model.VocabSize).ToArray();
        var reference = AllLogits(model, threads: 1, batch: 0, prompt);
        SameBits(reference, AllLogits(model, threads: 2, batch: 0, prompt), $"pythia {type}, 2 threads");
        SameBits(reference, AllLogits(model, threads: 3, batch: 7, prompt), $"pythia {type}, 3 threads, batches of 7");
    }
}
