using MicroLm.Cli;

namespace MicroLm.Tests.Sessions;

/// <summary>`microlm bench` runs end to end and prints llama-bench's table; bad arguments are usage errors.</summary>
public class BenchCommandTests
{
    [SharedFact]
    public void Bench_prints_a_row_per_thread_count_and_test()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        string model = SharedData.Path("models", "gguf", "stories260K-Q8_0.gguf");
        int code = CliMain.Run(["bench", "-m", model, "-t", "1,2", "-p", "8", "-n", "4", "-r", "2"], stdout, stderr);
        Assert.True(code == 0, stderr.ToString());
        var lines = stdout.ToString().Split('\n');
        Assert.Equal("| model | size | params | threads | test | t/s |", lines[0]);
        Assert.Equal(4, lines.Count(l => l.StartsWith("| stories260K-Q8_0.gguf |", StringComparison.Ordinal)));
        Assert.Contains(lines, l => l.Contains("| 2 | tg4 | ", StringComparison.Ordinal) && l.Contains(" ± ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("load: ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("peak working set: ", StringComparison.Ordinal));
    }

    [SharedTheory]
    [InlineData("-t", "0")]
    [InlineData("-t", "a,b")]
    [InlineData("-r", "0")]
    public void Bad_arguments_are_usage_errors(string flag, string value)
    {
        var stderr = new StringWriter();
        int code = CliMain.Run(["bench", "-m", SharedData.Path("models", "gguf", "stories260K-F32.gguf"), flag, value], new StringWriter(), stderr);
        Assert.Equal(1, code);
        Assert.StartsWith("microlm: error:", stderr.ToString(), StringComparison.Ordinal);
    }
}
