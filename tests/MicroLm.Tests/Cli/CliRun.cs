using MicroLm.Cli;

namespace MicroLm.Tests.Cli;

/// <summary>Runs `microlm` in-process and checks the shape of a failure: one "microlm: error:" line, no stack trace.</summary>
internal static class CliRun
{
    public static string ModelPath => SharedData.Path("models", "gguf", "stories260K-F32.gguf");
    public static string Llama2c => SharedData.Path("models", "llama2c", "stories260K.bin");
    public static string Tok512 => SharedData.Path("models", "llama2c", "tok512.bin");

    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter { NewLine = "\n" };
        var stderr = new StringWriter { NewLine = "\n" };
        int code = CliMain.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    public static string[] ErrorLines(string err) =>
        [.. err.Split('\n').Where(l => l.Contains("error", StringComparison.OrdinalIgnoreCase))];

    /// <summary>Exit 1, exactly one error line containing <paramref name="expected"/>, no stack trace, nothing on stdout.</summary>
    public static string AssertError((int Code, string Out, string Err) r, string expected)
    {
        Assert.True(r.Code == 1, $"exit {r.Code}; stderr: {r.Err}");
        var lines = r.Err.TrimEnd('\n').Split('\n');
        Assert.True(lines.Length == 1, "expected one line, got: " + r.Err);
        Assert.StartsWith("microlm: error: ", lines[0], StringComparison.Ordinal);
        Assert.Contains(expected, lines[0], StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", r.Err, StringComparison.Ordinal);
        Assert.Equal("", r.Out);
        return lines[0];
    }

    public static string TempDir()
    {
        string d = Path.Combine(Path.GetTempPath(), "microlm-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }
}
