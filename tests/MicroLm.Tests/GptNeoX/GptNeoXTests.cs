using MicroLm.Generation;
using MicroLm.Models;
using MicroLm.Synthetic;
using MicroLm.Tensors;

namespace MicroLm.Tests.GptNeoX;

/// <summary>A synthetic Pythia-14M (d 128, 6 layers, 4 heads, 8 rotary dims, FFN 512, the GPT-NeoX
/// tokenizer padded to 50304 tokens), written once for the class.</summary>
public sealed class Pythia14MFixture
{
    public static string TokenizerFile => SharedData.Path("tokenizer-vectors", "ggml-vocab-gpt-neox.gguf");
    // Made on first use: the fixture is created even when its tests are skipped (no ../shared).
    private readonly Lazy<byte[]> _bytes = new(() => SyntheticGptNeoX.ToBytes(SyntheticGptNeoX.Pythia("14M", TokenizerFile, GgmlType.Q8_0, seed: 7) with { ContextLength = 128 }));
    public byte[] Bytes => _bytes.Value;
}

public class GptNeoXTests(Pythia14MFixture fixture) : IClassFixture<Pythia14MFixture>
{
    private const string Prompt = "Once upon a time, there was a little girl named Lily.";

    [SharedFact]
    public void Pythia14M_loads_with_llama_cpp_hyperparameters()
    {
        using var model = Model.Load(fixture.Bytes);
        var c = model.Config;
        Assert.Equal("gptneox", c.Architecture);
        Assert.Equal((128, 512, 6, 4, 4, 32, 8, 50304), (c.Dim, c.HiddenDim, c.Layers, c.Heads, c.KvHeads, c.HeadDim, c.RopeDims, c.VocabSize));
        Assert.Equal(1e-5f, c.NormEpsilon);
        Assert.True(Assert.IsType<Models.GptNeoX>(model.Architecture).ParallelResidual);
        Assert.Equal(50304, model.Tokenizer.VocabSize);
        Assert.Equal("[PAD50303]", model.Tokenizer.TokenText(50303));
    }

    [SharedFact]
    public void Greedy_generation_is_finite_and_repeatable()
    {
        using var model = Model.Load(fixture.Bytes);
        var prompt = model.Tokenizer.Encode(Prompt, addBos: false);
        List<int> Run()
        {
            using var session = model.CreateSession(contextLength: 64);
            var generator = new Generator(session, SamplingOptions.Greedy)
            {
                StopAtEndOfSequence = false,
                OnLogits = (_, _, logits) => Assert.True(logits.ToArray().All(float.IsFinite)),
            };
            return generator.Generate(prompt, 16).Select(t => t.Id).ToList();
        }
        var first = Run();
        Assert.Equal(16, first.Count);
        Assert.All(first, t => Assert.InRange(t, 0, 50303));
        Assert.Equal(first, Run());
        Assert.False(string.IsNullOrEmpty(model.Tokenizer.DecodeAll(first)));
    }

    [SharedFact]
    public void Threads_and_batch_sizes_give_identical_logits()
    {
        using var model = Model.Load(fixture.Bytes);
        var prompt = model.Tokenizer.Encode(Prompt, addBos: false).ToArray();
        float[][] Logits(int threads, int batch)
        {
            using var session = model.CreateSession(contextLength: 64, threads: threads, maxBatch: 32);
            var all = new List<float[]>();
            session.Evaluate(prompt, batch, (_, _, l) => all.Add(l.ToArray()));
            for (int i = 0; i < 4; i++) session.Evaluate([Kernels_ArgMax(all[^1])], onLogits: (_, _, l) => all.Add(l.ToArray()));
            return all.ToArray();
        }
        var reference = Logits(1, 32);
        foreach (var (threads, batch) in new[] { (1, 1), (2, 32), (3, 5), (7, 3) })
        {
            var other = Logits(threads, batch);
            Assert.Equal(reference.Length, other.Length);
            for (int p = 0; p < reference.Length; p++)
                Assert.True(reference[p].AsSpan().SequenceEqual(other[p]), $"position {p} differs with {threads} threads, batch {batch}");
        }
    }

    private static int Kernels_ArgMax(float[] x) => MicroLm.Math.Kernels.ArgMax(x);

    private static SyntheticGptNeoXOptions Tiny => new()
    {
        Dim = 32, HiddenDim = 64, Layers = 1, Heads = 2, ContextLength = 32, TokenizerFile = Pythia14MFixture.TokenizerFile,
    };

    [SharedFact]
    public void Missing_bias_is_named()
    {
        var bytes = SyntheticGptNeoX.ToBytes(Tiny with { OmitTensors = new HashSet<string> { "blk.0.attn_qkv.bias" } });
        var e = Assert.Throws<MicroLmException>(() => Model.Load(bytes));
        Assert.Contains("missing tensor 'blk.0.attn_qkv.bias'", e.Message);
    }

    [SharedFact]
    public void Wrong_qkv_shape_is_named_with_the_expected_shape()
    {
        var w = SyntheticGptNeoX.Build(Tiny with { OmitTensors = new HashSet<string> { "blk.0.attn_qkv.weight" } });
        w.AddTensor("blk.0.attn_qkv.weight", GgmlType.F32, [32, 64], new byte[32 * 64 * 4]); // Q and K only
        var e = Assert.Throws<MicroLmException>(() => Model.Load(w.ToArray()));
        Assert.Contains("'blk.0.attn_qkv.weight'", e.Message);
        Assert.Contains("expected [32, 96]", e.Message);
    }

    [SharedFact]
    public void Missing_classifier_is_named()
    {
        var bytes = SyntheticGptNeoX.ToBytes(Tiny with { OmitTensors = new HashSet<string> { "output.weight" } });
        var e = Assert.Throws<MicroLmException>(() => Model.Load(bytes));
        Assert.Contains("missing tensor 'output.weight'", e.Message);
    }
}
