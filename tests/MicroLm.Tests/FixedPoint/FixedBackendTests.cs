using MicroLm.Cli;
using MicroLm.Generation;
using MicroLm.Models;
using MicroLm.Synthetic;
using MicroLm.Tensors;
using MicroLm.Tests.GptNeoX;

namespace MicroLm.Tests.FixedPoint;

/// <summary>The fixed-point backend end to end: bits independent of threads and prompt batches, close to
/// the float backend, and a clear error (never a wrapped value) when a model leaves its range.</summary>
public class FixedBackendTests
{
    private static string Stories(string format) => SharedData.Path("models", "gguf", $"stories260K-{format}.gguf");

    private static SyntheticGptNeoXOptions SmallPythia => SyntheticGptNeoX.Pythia("14M", Pythia14MFixture.TokenizerFile, GgmlType.F32, seed: 3)
        with { Layers = 2, VocabSize = 2048, ContextLength = 64, ParallelResidual = false };

    private static float[][] Logits(Model model, int[] prompt, int threads, int batch)
    {
        using var session = model.CreateSession(contextLength: 64, threads: threads, maxBatch: 16);
        var all = new List<float[]>();
        session.Evaluate(prompt, batch, (_, _, l) => all.Add(l.ToArray()));
        for (int i = 0; i < 4; i++) session.Evaluate([MicroLm.Math.Kernels.ArgMax(all[^1])], onLogits: (_, _, l) => all.Add(l.ToArray()));
        return all.ToArray();
    }

    public static TheoryData<string> Models => new() { "stories260K-F32", "stories260K-Q8_0", "stories260K-Q4_0", "pythia-sequential" };

    private static Model Load(string name, Backend backend) => name == "pythia-sequential"
        ? Model.Load(SyntheticGptNeoX.ToBytes(SmallPythia), backend)
        : Model.Load(Stories(name["stories260K-".Length..]), backend);

    [SharedTheory]
    [MemberData(nameof(Models))]
    public void Threads_and_batch_sizes_give_identical_bits(string name)
    {
        using var model = Load(name, Backend.Fixed);
        var prompt = model.Tokenizer.Encode("Once upon a time, there was a little dog named Sam.", addBos: true).ToArray();
        var reference = Logits(model, prompt, 1, 1);
        foreach (var (threads, batch) in new[] { (1, 16), (2, 16), (3, 5) }) // 7 threads: the determinism matrix
        {
            var other = Logits(model, prompt, threads, batch);
            Assert.Equal(reference.Length, other.Length);
            for (int p = 0; p < reference.Length; p++)
                Assert.True(reference[p].AsSpan().SequenceEqual(other[p]), $"position {p} differs with {threads} threads, batch {batch}");
        }
    }

    /// <summary>F32 weights: the fixed backend's only differences from float are Q16.16 roundings (2⁻¹⁷
    /// per step) and the 16-bit weight blocks (2⁻¹⁶ of a block's largest weight); measured max |Δlogit|
    /// 0.0022 on 6 prompts × 64 tokens (docs/determinism.md), so 0.02 leaves room for other prompts
    /// while a wrong step (a misplaced shift, a wrong rotation) moves logits by 0.1 to several units.</summary>
    [SharedFact]
    public void Logits_follow_the_float_backend_for_F32_weights()
    {
        using var floatModel = Model.Load(Stories("F32"));
        using var fixedModel = Model.Load(Stories("F32"), Backend.Fixed);
        var prompt = floatModel.Tokenizer.Encode("Lily and Tom went to the park. They saw a big tree", addBos: true).ToArray();
        var f = Logits(floatModel, prompt, 1, 16);
        var x = Logits(fixedModel, prompt, 1, 16);
        for (int p = 0; p < f.Length; p++)
        {
            for (int i = 0; i < f[p].Length; i++)
                Assert.True(System.Math.Abs(f[p][i] - x[p][i]) < 0.02f, $"position {p}, token {i}: float {f[p][i]}, fixed {x[p][i]}");
            Assert.Equal(MicroLm.Math.Kernels.ArgMax(f[p]), MicroLm.Math.Kernels.ArgMax(x[p]));
        }
    }

    [SharedFact]
    public void GptNeoX_fixed_follows_float()
    {
        var bytes = SyntheticGptNeoX.ToBytes(SmallPythia with { ParallelResidual = true });
        using var floatModel = Model.Load(bytes);
        using var fixedModel = Model.Load(bytes, Backend.Fixed);
        var prompt = floatModel.Tokenizer.Encode("Hello, world. The little dog", addBos: false).ToArray();
        var f = Logits(floatModel, prompt, 1, 16);
        var x = Logits(fixedModel, prompt, 2, 3);
        for (int p = 0; p < f.Length; p++)
            for (int i = 0; i < f[p].Length; i++)
                Assert.True(System.Math.Abs(f[p][i] - x[p][i]) < 0.02f, $"position {p}, token {i}: float {f[p][i]}, fixed {x[p][i]}");
    }

    [Fact]
    public void Huge_activations_stop_with_a_clear_error_naming_the_layer()
    {
        // Weights 3000× their usual scale: the residual stream leaves Q16.16's ±32768 in the first layer.
        var bytes = SyntheticLlama.ToBytes(new SyntheticLlamaOptions { WeightScale = 3000f, Seed = 4 });
        using var model = Model.Load(bytes, Backend.Fixed);
        using var session = model.CreateSession(32);
        var e = Assert.Throws<MicroLmException>(() => session.Evaluate([1, 5, 9]));
        Assert.Contains("fixed-point overflow in layer 0", e.Message);
        Assert.Contains("Q16.16", e.Message);
        Assert.Equal(0, session.Position);
    }

    [Fact]
    public void A_norm_weight_beyond_the_range_is_refused_at_load()
    {
        var bytes = SyntheticLlama.ToBytes(new SyntheticLlamaOptions { NormJitter = 1e6f, Seed = 4 });
        var e = Assert.Throws<MicroLmException>(() => Model.Load(bytes, Backend.Fixed));
        Assert.Contains("outside the fixed-point range", e.Message);
        using var floatModel = Model.Load(bytes); // the float backend takes it
    }

    [SharedFact]
    public void Unsupported_weight_types_are_named()
    {
        var e = Assert.Throws<MicroLmException>(() => Model.Load(Stories("Q4_K_M-fallback"), Backend.Fixed));
        Assert.Contains("the fixed-point backend reads F32, F16, BF16, Q8_0 and Q4_0 weights", e.Message);
    }

    [SharedFact]
    public void Reset_session_repeats_its_bits()
    {
        using var model = Model.Load(Stories("Q8_0"), Backend.Fixed);
        using var session = model.CreateSession(64);
        var prompt = model.Tokenizer.Encode("The little dog", addBos: true).ToArray();
        var first = session.Evaluate(prompt).ToArray();
        session.Reset();
        var again = session.Evaluate(prompt, lastLogitsOnly: true).ToArray();
        Assert.True(first.AsSpan().SequenceEqual(again));
    }

    [SharedFact]
    public void Cli_accepts_backend_fixed_and_refuses_other_values()
    {
        var output = new StringWriter(); var error = new StringWriter();
        int code = CliMain.Run(["verify", "-m", Stories("F32"), "-p", "Once upon a time", "-n", "40", "--temp", "0", "--backend", "fixed",
            "--expect", Path.Combine(Golden.Directory, "stories260K-F32-fixed-greedy.trace")], output, error);
        Assert.True(code == 0, error.ToString());
        code = CliMain.Run(["verify", "-m", Stories("F32"), "-p", "x", "-n", "1", "--backend", "double"], output, error = new StringWriter());
        Assert.Equal(1, code);
        Assert.Contains("--backend expects float or fixed, got 'double'", error.ToString());
    }
}

internal static class Golden
{
    /// <summary>tests/golden, found above the test assembly.</summary>
    public static string Directory
    {
        get
        {
            for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
                if (System.IO.Directory.Exists(Path.Combine(d.FullName, "tests", "golden"))) return Path.Combine(d.FullName, "tests", "golden");
            throw new DirectoryNotFoundException("tests/golden");
        }
    }
}
