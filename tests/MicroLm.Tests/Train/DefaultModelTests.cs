using System.Security.Cryptography;
using MicroLm.Cli;

namespace MicroLm.Tests.Train;

/// <summary>The default model embedded in the CLI (models/microlm-stories.gguf): it is the committed file,
/// `run` without -m uses it, and its greedy story for a fixed prompt stays the committed text.</summary>
public sealed class DefaultModelTests
{
    private static string RepoFile(params string[] parts)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MicroLm.sln"))) return Path.Combine([dir.FullName, .. parts]);
        throw new DirectoryNotFoundException("no MicroLm.sln above the test assembly");
    }

    [Fact]
    public void TheEmbeddedModelIsTheCommittedFileWithItsPublishedChecksum()
    {
        var embedded = ModelSource.DefaultModel();
        Assert.Equal(File.ReadAllBytes(RepoFile("models", "microlm-stories.gguf")), embedded);
        string published = File.ReadAllText(RepoFile("models", "microlm-stories.gguf.sha256")).Split(' ')[0];
        Assert.Equal(published, Convert.ToHexStringLower(SHA256.HashData(embedded)));
    }

    [Fact]
    public void GreedyStoryWithoutAModelFlagIsTheCommittedText()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CliMain.Run(["run", "-p", "Once upon a time", "-n", "100", "--temp", "0"], stdout, stderr);
        Assert.True(code == 0, stderr.ToString());
        Assert.Equal(File.ReadAllText(RepoFile("tests", "golden", "default-model-greedy.txt")), stdout.ToString());
    }
}
