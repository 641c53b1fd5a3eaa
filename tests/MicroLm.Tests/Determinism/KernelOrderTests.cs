using MicroLm.Cli;
using MicroLm.Math;
using MicroLm.Sampling;

namespace MicroLm.Tests.Determinism;

[CollectionDefinition("Global kernel switches", DisableParallelization = true)]
public class GlobalKernelSwitches;

/// <summary>Tests that flip process-wide kernel switches; they run alone.</summary>
[Collection("Global kernel switches")]
public class KernelOrderTests
{
    private static float[] Random(int n, int seed)
    {
        var rng = new Rng((ulong)seed);
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (rng.NextFloat() - 0.5f) * (1 << (i % 7));
        return x;
    }

    private static T WithVectorBits<T>(int bits, Func<T> f)
    {
        int saved = Kernels.VectorBits;
        try { Kernels.VectorBits = bits; return f(); }
        finally { Kernels.VectorBits = saved; }
    }

    [Fact]
    public void EveryVectorWidthGivesTheSameBits()
    {
        foreach (int n in new[] { 1, 15, 16, 17, 64, 100, 172, 288, 768, 1000 })
        {
            var a = Random(n, n); var b = Random(n, n + 1);
            float scalar = WithVectorBits(0, () => Kernels.Dot(a, b));
            foreach (int bits in new[] { 128, 256, 512 })
            {
                if (bits > Kernels.VectorBits && bits > 128) continue; // not available on this CPU
                float v = WithVectorBits(bits, () => Kernels.Dot(a, b));
                Assert.Equal(BitConverter.SingleToInt32Bits(scalar), BitConverter.SingleToInt32Bits(v));
            }
        }
    }

    [Fact]
    public void DotFollowsTheDocumentedLaneOrder()
    {
        // Spell the contract out in scalar code and compare bits: lanes i % 16, then pairwise folding.
        var a = Random(1000, 3); var b = Random(1000, 4);
        var lanes = new float[16];
        for (int i = 0; i < a.Length; i++) lanes[i % 16] += a[i] * b[i];
        for (int j = 0; j < 8; j++) lanes[j] += lanes[j + 8];
        for (int j = 0; j < 4; j++) lanes[j] += lanes[j + 4];
        float expected = (lanes[0] + lanes[2]) + (lanes[1] + lanes[3]);
        Assert.Equal(BitConverter.SingleToInt32Bits(expected), BitConverter.SingleToInt32Bits(Kernels.Dot(a, b)));
    }

    [Fact]
    public void ADifferentReductionOrderChangesTheTraceAndExpectNamesThePosition()
    {
        string model = SharedData.Path("models", "gguf", "stories260K-F32.gguf");
        string golden = Path.GetTempFileName();
        try
        {
            string[] args = ["verify", "-m", model, "-p", "Once upon a time", "-n", "8", "--temp", "0"];
            var o = new StringWriter();
            Assert.Equal(0, CliMain.Run(args, o, new StringWriter()));
            File.WriteAllText(golden, o.ToString());

            // Same order: the check passes.
            Assert.Equal(0, CliMain.Run([.. args, "--expect", golden], new StringWriter(), new StringWriter()));

            Kernels.AlternativeOrderForTests = 1;
            var err = new StringWriter();
            int code;
            try { code = CliMain.Run([.. args, "--expect", golden], new StringWriter(), err); }
            finally { Kernels.AlternativeOrderForTests = 0; }
            Assert.NotEqual(0, code);
            Assert.Contains("mismatch at position 0", err.ToString());
        }
        finally { File.Delete(golden); }
    }

    [Fact]
    public void ScalarPathGivesTheSameTraceAsTheVectorPath()
    {
        string model = SharedData.Path("models", "gguf", "stories260K-Q8_0.gguf");
        string[] args = ["verify", "-m", model, "-p", "Once upon a time", "-n", "6", "--temp", "0.8", "--seed", "5"];
        var native = new StringWriter();
        Assert.Equal(0, CliMain.Run(args, native, new StringWriter()));
        var scalar = WithVectorBits(0, () => { var w = new StringWriter(); CliMain.Run(args, w, new StringWriter()); return w.ToString(); });
        Assert.Equal(native.ToString(), scalar);
    }
}
