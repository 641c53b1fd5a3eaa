using MicroLm.Cli;
using MicroLm.Gguf;
using MicroLm.Models;
using MicroLm.Sampling;

namespace MicroLm.Tests.Llama;

public class RobustnessTests
{
    private static readonly string F32 = SharedData.Path("models", "gguf", "stories260K-F32.gguf");

    /// <summary>Rewrites the real file through our writer, changing metadata or tensors on the way.</summary>
    private static byte[] Rewrite(Func<string, bool>? keepTensor = null, Func<string, long[], long[]>? reshape = null,
        Dictionary<string, string>? strings = null)
    {
        using var f = GgufFile.Open(F32);
        var w = new GgufWriter();
        foreach (var (key, value) in f.Metadata)
        {
            if (strings != null && strings.TryGetValue(key, out var s)) w.Add(key, s);
            else w.Add(key, value.Type, value.ToObject());
        }
        foreach (var t in f.Tensors)
        {
            if (keepTensor != null && !keepTensor(t.Name)) continue;
            var data = f.GetTensorData(t).ToArray();
            var shape = reshape?.Invoke(t.Name, t.Shape) ?? t.Shape;
            w.AddTensor(t.Name, t.Type.Type, shape, data);
        }
        return w.ToArray();
    }

    [SharedFact]
    public void MissingTensorIsNamed()
    {
        var e = Assert.Throws<MicroLmException>(() => Model.Load(Rewrite(keepTensor: n => n != "blk.3.ffn_up.weight")));
        Assert.Contains("blk.3.ffn_up.weight", e.Message);
    }

    [SharedFact]
    public void WrongShapeIsNamed()
    {
        var bytes = Rewrite(reshape: (n, s) => n == "blk.1.attn_k.weight" ? [32, 64] : s);
        var e = Assert.Throws<MicroLmException>(() => Model.Load(bytes));
        Assert.Contains("blk.1.attn_k.weight", e.Message);
        Assert.Contains("shape", e.Message);
    }

    [SharedFact]
    public void UnknownArchitectureIsNamed()
    {
        var e = Assert.Throws<MicroLmException>(() => Model.Load(Rewrite(strings: new() { ["general.architecture"] = "mystery" })));
        Assert.Contains("mystery", e.Message);
    }

    [SharedFact]
    public void PromptLongerThanTheContextIsAClearError()
    {
        var o = new StringWriter(); var e = new StringWriter();
        string prompt = string.Concat(Enumerable.Repeat("Once upon a time ", 100));
        int code = CliMain.Run(["run", "-m", F32, "-p", prompt, "-c", "64", "-n", "4"], o, e);
        Assert.NotEqual(0, code);
        Assert.StartsWith("microlm: error:", e.ToString());
        Assert.Contains("context", e.ToString());
        Assert.Single(e.ToString().TrimEnd('\n').Split('\n'));
    }

    [SharedFact]
    public void GenerationStopsAtTheEndOfTheContext()
    {
        using var model = Model.Load(F32);
        using var session = model.CreateSession(contextLength: 20);
        var g = new Generation.Generator(session, SamplingOptions.Greedy) { StopAtEndOfSequence = false };
        var tokens = g.Generate(model.Tokenizer.Encode("Once upon a time", true), 100).ToList();
        Assert.Equal(StopReason.ContextFull, g.StopReason);
        Assert.Equal(20 - 5 + 1, tokens.Count); // the last token is sampled from the final position's logits
    }

    [SharedFact]
    public void DecodeLoopAllocatesNothingPerToken()
    {
        using var model = Model.Load(SharedData.Path("models", "gguf", "stories260K-Q8_0.gguf"));
        using var session = model.CreateSession(512);
        var sampler = new Sampler(new SamplingOptions { Temperature = 0.8f, Seed = 3 }, model.Config.VocabSize);
        var one = new int[1];
        one[0] = sampler.Sample(session.Evaluate(model.Tokenizer.Encode("Once upon a time", true).ToArray()));
        // Warm up past the JIT's tiering (call counting and the switch to optimized code allocate on the
        // calling thread), so that what is measured is the steady decode loop.
        for (int round = 0; round < 3; round++)
        {
            for (int i = 0; i < 100; i++) { sampler.Accept(one[0]); one[0] = sampler.Sample(session.Evaluate(one)); }
            Thread.Sleep(200);
        }
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++) { sampler.Accept(one[0]); one[0] = sampler.Sample(session.Evaluate(one)); }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
    }
}
