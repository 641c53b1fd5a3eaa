using MicroLm.Cli;
using MicroLm.Generation;

namespace MicroLm.Tests.Determinism;

public class TraceTests
{
    [Fact]
    public void Sha256MatchesTheFrameworkImplementation()
    {
        var rng = new Sampling.Rng(1);
        foreach (int n in new[] { 0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 4096 })
        {
            var data = new byte[n];
            for (int i = 0; i < n; i++) data[i] = (byte)rng.NextUInt64();
            Assert.Equal(System.Security.Cryptography.SHA256.HashData(data), Sha256.HashData(data));
        }
    }

    private static string Verify(params string[] extra)
    {
        string model = SharedData.Path("models", "gguf", "stories260K-Q4_0.gguf");
        var o = new StringWriter(); var e = new StringWriter();
        int code = CliMain.Run(["verify", "-m", model, "-p", "Once upon a time there was", "-n", "12", "--temp", "0.9", "--seed", "11", .. extra], o, e);
        Assert.True(code == 0, e.ToString());
        return o.ToString();
    }

    [SharedFact]
    public void ThreadCountAndPrefillBatchDoNotChangeTheTrace()
    {
        string reference = Verify("-t", "1", "--batch", "1");
        Assert.Equal(reference, Verify("-t", "2", "--batch", "1"));
        Assert.Equal(reference, Verify("-t", "7", "--batch", "3"));
        Assert.Equal(reference, Verify("-t", "3", "--batch", "64"));
    }

    [SharedFact]
    public void TraceHasOneLinePerPositionAndAFinalHash()
    {
        var lines = Verify().TrimEnd('\n').Split('\n');
        Assert.StartsWith("trace ", lines[^1]);
        for (int i = 0; i < lines.Length - 1; i++)
        {
            var parts = lines[i].Split('\t');
            Assert.Equal(i.ToString(System.Globalization.CultureInfo.InvariantCulture), parts[0]);
            Assert.Equal(64, parts[2].Length);
        }
    }

    [SharedFact]
    public void IdsPromptAndDumpLogits()
    {
        string model = SharedData.Path("models", "gguf", "stories260K-F32.gguf");
        string dump = Path.GetTempFileName();
        try
        {
            var o = new StringWriter();
            Assert.Equal(0, CliMain.Run(["verify", "-m", model, "--ids", "1 403 407", "-n", "2", "--temp", "0", "--dump-logits", dump], o, new StringWriter()));
            int positions = o.ToString().TrimEnd('\n').Split('\n').Length - 1;
            Assert.Equal(5, positions); // 3 prompt positions + 2 generated tokens, each evaluated
            Assert.Equal(positions * 512 * 4, new FileInfo(dump).Length);
        }
        finally { File.Delete(dump); }
    }
}
