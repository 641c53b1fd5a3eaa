using System.Text.Json;
using MicroLm.Cli;
using MicroLm.Gguf;

namespace MicroLm.Tests.Gguf;

/// <summary>`microlm inspect` through <see cref="CliMain.Run"/>, on every shared GGUF and on broken files.</summary>
public class GgufInspectCliTests
{
    public static TheoryData<string> SharedFiles()
    {
        var d = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(SharedData.Path("models", "gguf"), "*.gguf").Order()) d.Add(Path.GetRelativePath(SharedData.Root, f));
        foreach (var f in Directory.GetFiles(SharedData.Path("tokenizer-vectors"), "*.gguf", SearchOption.TopDirectoryOnly).Order())
            d.Add(Path.GetRelativePath(SharedData.Root, f));
        return d;
    }

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CliMain.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [SharedTheory, MemberData(nameof(SharedFiles))]
    public void InspectPrintsTheTensorCount(string rel)
    {
        string path = Path.Combine(SharedData.Root, rel);
        int tensors, keys;
        using (var f = GgufFile.Open(path)) { tensors = f.Tensors.Count; keys = f.MetadataCount; }
        var (code, output, err) = Run("inspect", path);
        Assert.Equal("", err);
        Assert.Equal(0, code);
        Assert.Contains($"\ntensors: {tensors}\n", output.ReplaceLineEndings("\n"));
        Assert.Contains($"\nmetadata: {keys} keys\n", output.ReplaceLineEndings("\n"));
        if (tensors > 0)
        {
            Assert.Contains("blk.4.ffn_down.weight", output);
            Assert.Contains("memory at context 128:", output);
        }
    }

    [SharedTheory, MemberData(nameof(SharedFiles))]
    public void InspectJsonParses(string rel)
    {
        string path = Path.Combine(SharedData.Root, rel);
        using var f = GgufFile.Open(path);
        var (code, output, err) = Run("inspect", path, "--json");
        Assert.Equal("", err);
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        var root = doc.RootElement;
        Assert.Equal(f.Tensors.Count, root.GetProperty("tensors").GetArrayLength());
        Assert.Equal(f.MetadataCount, root.GetProperty("metadata").EnumerateObject().Count());
        Assert.Equal(f.Length, root.GetProperty("bytes").GetInt64());
        Assert.Equal(f.Architecture, root.GetProperty("metadata").GetProperty("general.architecture").GetString());
        var tokens = root.GetProperty("metadata").GetProperty("tokenizer.ggml.tokens");
        Assert.Equal(f.Get("tokenizer.ggml.tokens").Count, tokens.GetProperty("count").GetInt64());
        if (f.Tensors.Count > 0)
        {
            var first = root.GetProperty("tensors")[0];
            Assert.Equal(f.Tensors[0].Name, first.GetProperty("name").GetString());
            Assert.Equal(f.Tensors[0].ByteSize, first.GetProperty("bytes").GetInt64());
            Assert.Equal(f.Tensors.Sum(t => t.ByteSize), root.GetProperty("memory").GetProperty("weights").GetInt64());
        }
    }

    private static void AssertOneErrorLine(int code, string output, string err, string expected)
    {
        Assert.NotEqual(0, code);
        var lines = err.ReplaceLineEndings("\n").TrimEnd('\n').Split('\n');
        Assert.Single(lines);
        Assert.StartsWith("microlm: error: ", lines[0]);
        Assert.Contains(expected, lines[0]);
        Assert.DoesNotContain("   at ", err);
        Assert.DoesNotContain("Exception", err);
        Assert.Equal("", output);
    }

    [SharedTheory]
    [InlineData(100)]
    [InlineData(14000)]
    [InlineData(200_000)]
    public void TruncatedFileIsOneErrorLine(int length)
    {
        string path = Path.Combine(Path.GetTempPath(), $"microlm-trunc-{Guid.NewGuid():N}.gguf");
        try
        {
            File.WriteAllBytes(path, File.ReadAllBytes(SharedData.Path("models", "gguf", "stories260K-Q8_0.gguf"))[..length]);
            foreach (var json in new[] { false, true })
            {
                var (code, output, err) = json ? Run("inspect", path, "--json") : Run("inspect", path);
                AssertOneErrorLine(code, output, err, "(at byte ");
            }
        }
        finally { File.Delete(path); }
    }

    [SharedFact]
    public void NonGgufFileIsOneErrorLine()
    {
        var (code, output, err) = Run("inspect", SharedData.Path("tokenizer-vectors", "README.md"));
        AssertOneErrorLine(code, output, err, "not a GGUF file");
        (code, output, err) = Run("inspect", SharedData.Path("tokenizer-vectors", "ggml-vocab-gpt-2.gguf.out"));
        AssertOneErrorLine(code, output, err, "not a GGUF file");
        (code, output, err) = Run("inspect", SharedData.Path("models", "gguf", "no-such-file.gguf"));
        AssertOneErrorLine(code, output, err, "no such file");
    }

    [Fact]
    public void EmptyFileAndHostileNamesAreOneErrorLine()
    {
        string path = Path.Combine(Path.GetTempPath(), $"microlm-bad-{Guid.NewGuid():N}.gguf");
        try
        {
            File.WriteAllBytes(path, []);
            var (code, output, err) = Run("inspect", path);
            AssertOneErrorLine(code, output, err, "empty");
            File.WriteAllBytes(path, new RawGguf().Header(0, 2).KvU32("evil\nkey", 1).KvU32("evil\nkey", 2).ToArray());
            (code, output, err) = Run("inspect", path);
            AssertOneErrorLine(code, output, err, "duplicate metadata key 'evil\\nkey'");
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void FileTheModelCodeRejectsStillInspects()
    {
        // A parseable file whose llama.* keys have the wrong types: inspect shows it and says why no memory estimate.
        string path = Path.Combine(Path.GetTempPath(), $"microlm-odd-{Guid.NewGuid():N}.gguf");
        try
        {
            new GgufWriter().Add("general.architecture", "llama").Add("llama.embedding_length", "sixty-four")
                .AddTensor("w", MicroLm.Tensors.GgmlType.F32, [4], new byte[16]).WriteTo(path);
            var (code, output, err) = Run("inspect", path);
            Assert.Equal("", err);
            Assert.Equal(0, code);
            Assert.Contains("tensors: 1", output);
            Assert.Contains("memory: not estimated", output);
            (code, output, err) = Run("inspect", path, "--json");
            Assert.Equal(0, code);
            using var doc = JsonDocument.Parse(output);
            Assert.Equal(1, doc.RootElement.GetProperty("tensors").GetArrayLength());
        }
        finally { File.Delete(path); }
    }
}
