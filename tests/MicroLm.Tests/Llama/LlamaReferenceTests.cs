using System.Globalization;
using MicroLm.Cli;
using MicroLm.Models;
using MicroLm.Sampling;
using Xunit.Abstractions;

namespace MicroLm.Tests.Llama;

/// <summary>stories260K against llama2.c's own output (../shared/reference/llama2c).</summary>
public class LlamaReferenceTests(ITestOutputHelper output)
{
    private static string Ref(string name) => SharedData.Path("reference", "llama2c", name);
    private static string Gguf(string format) => SharedData.Path("models", "gguf", $"stories260K-{format}.gguf");
    private static readonly string Bin = SharedData.Path("models", "llama2c", "stories260K.bin");
    private static readonly string Tok512 = SharedData.Path("models", "llama2c", "tok512.bin");

    private static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var o = new StringWriter(); var e = new StringWriter();
        int code = CliMain.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    public static TheoryData<string, int, string> GreedyCases() => new()
    {
        { "F32", 196, "stories260K_once_upon_a_time_greedy_n200.txt" },
        { "F32", 60, "stories260K_once_upon_a_time_greedy_n64.txt" },
        { "F16", 196, "stories260K_once_upon_a_time_greedy_n200.txt" },
        { "F16", 60, "stories260K_once_upon_a_time_greedy_n64.txt" },
        { "bin", 196, "stories260K_once_upon_a_time_greedy_n200.txt" },
        { "bin", 60, "stories260K_once_upon_a_time_greedy_n64.txt" },
    };

    [SharedTheory]
    [MemberData(nameof(GreedyCases))]
    public void GreedyRunPrintsExactlyWhatLlama2cPrints(string format, int n, string reference)
    {
        string[] model = format == "bin" ? ["-m", Bin, "--tokenizer", Tok512] : ["-m", Gguf(format)];
        var (code, stdout, stderr) = Cli(["run", .. model, "-p", "Once upon a time", "-n", n.ToString(CultureInfo.InvariantCulture), "--temp", "0"]);
        Assert.True(code == 0, stderr);
        Assert.Equal(File.ReadAllText(Ref(reference)), stdout);
    }

    [SharedFact]
    public void ConvertedCheckpointRunsLikeLlama2c()
    {
        string gguf = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"microlm-{Guid.NewGuid():N}.gguf");
        try
        {
            var (code, _, err) = Cli("convert", "llama2c", Bin, "--tokenizer", Tok512, "-o", gguf);
            Assert.True(code == 0, err);
            var (code2, stdout, err2) = Cli("run", "-m", gguf, "-p", "Once upon a time", "-n", "196", "--temp", "0");
            Assert.True(code2 == 0, err2);
            Assert.Equal(File.ReadAllText(Ref("stories260K_once_upon_a_time_greedy_n200.txt")), stdout);
        }
        finally { File.Delete(gguf); }
    }

    private static int[] ReferenceTokens() => File.ReadAllLines(Ref("stories260K_once_tokens.txt"))
        .Where(l => l.Length > 0 && l[0] != '#').Select(l => int.Parse(l, CultureInfo.InvariantCulture)).ToArray();

    [SharedTheory]
    [InlineData("F32")]
    [InlineData("F16")]
    public void PromptAndGeneratedIdsMatch(string format)
    {
        var expected = ReferenceTokens();
        using var model = Model.Load(Gguf(format));
        var prompt = model.Tokenizer.Encode("Once upon a time", addBos: true);
        Assert.Equal(expected[..5], prompt);
        using var session = model.CreateSession(512);
        var generator = new Generation.Generator(session, SamplingOptions.Greedy);
        var ids = generator.Generate(prompt, expected.Length - 5).Select(t => t.Id).ToArray();
        Assert.Equal(expected[5..], ids);
    }

    [SharedTheory]
    [InlineData("F32")]
    [InlineData("bin")]
    public void LogitsWithin1e4OfLlama2c(string format)
    {
        // llama2.c uses glibc's expf/sinf/cosf and sums in another order; we use our own functions and
        // the 16-lane order. Both are float32 throughout, so the logits agree to a few float32 ulps of
        // their magnitude (~10): 1e-4 absolute is the bound.
        var rows = File.ReadAllLines(Ref("stories260K_once_logits_full.txt")).Where(l => l.Length > 0 && l[0] != '#')
            .Select(l => l.Split('\t')).ToArray();
        using var model = format == "bin"
            ? Model.Load(Llama2cCheckpoint.ToGguf(File.ReadAllBytes(Bin), File.ReadAllBytes(Tok512)))
            : Model.Load(Gguf(format));
        using var session = model.CreateSession(512);
        double worst = 0;
        foreach (var row in rows)
        {
            int pos = int.Parse(row[0], CultureInfo.InvariantCulture), token = int.Parse(row[1], CultureInfo.InvariantCulture);
            var expected = row[2].Split(' ').Select(s => double.Parse(s, CultureInfo.InvariantCulture)).ToArray();
            Assert.Equal(pos, session.Position);
            var logits = session.Evaluate([token]).ToArray();
            Assert.Equal(expected.Length, logits.Length);
            for (int i = 0; i < logits.Length; i++)
            {
                double d = System.Math.Abs(logits[i] - expected[i]);
                worst = System.Math.Max(worst, d);
                Assert.True(d <= 1e-4, $"position {pos}, logit {i}: {logits[i]:R} vs {expected[i]:R}");
            }
        }
        output.WriteLine($"{format}: largest |logit − llama2.c| over {rows.Length} positions × 512 = {worst:E3}");
    }
}
