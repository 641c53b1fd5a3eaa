using MicroLm.Cli;

namespace MicroLm.Tests.Tokenizers;

/// <summary>`microlm tokenize` on the vocabulary-only files (no tensors; several name architectures the
/// runtime does not run): every file tokenizes, and every file with llama.cpp's vectors gives their ids.</summary>
public sealed class TokenizeCliTests
{
    private static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CliMain.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    public static TheoryData<string> VocabFiles()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(ByteLevelBpeTests.VectorsDirectory(), "ggml-vocab-*.gguf").Order(StringComparer.Ordinal))
            data.Add(Path.GetFileName(f));
        return data;
    }

    [SharedFact]
    public void EveryVocabularyFileIsListed() => Assert.Equal(12, VocabFiles().Count);

    [SharedTheory]
    [MemberData(nameof(VocabFiles))]
    public void TokenizeNeedsOnlyTheVocabulary(string name)
    {
        string dir = ByteLevelBpeTests.VectorsDirectory();
        string path = Path.Combine(dir, name);
        var (code, output, err) = Cli("tokenize", "-m", path, "-p", "Hello world");
        Assert.True(code == 0, err);
        Assert.NotEmpty(output.Trim());

        string inp = path + ".inp";
        if (!File.Exists(inp)) return; // baichuan and gpt-neox have no vectors of their own
        var cases = ByteLevelBpeTests.ReadCases(inp);
        var expected = ByteLevelBpeTests.ReadExpected(path + ".out");
        Assert.Equal(cases.Length, expected.Length);
        var failures = new List<string>();
        for (int i = 0; i < cases.Length; i++)
        {
            (code, output, err) = Cli("tokenize", "-m", path, "--no-bos", "-p", cases[i]);
            Assert.True(code == 0, err);
            string want = string.Join(' ', expected[i]);
            if (output.TrimEnd('\n') != want) failures.Add($"case {i}: expected '{want}', got '{output.TrimEnd('\n')}'");
        }
        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    [Fact]
    public void AFileWithoutATokenizerIsOneClearError()
    {
        string path = Path.Combine(Path.GetTempPath(), $"microlm-notok-{Guid.NewGuid():N}.gguf");
        try
        {
            new MicroLm.Gguf.GgufWriter().Add("general.architecture", "llama").WriteTo(path);
            var (code, _, err) = Cli("tokenize", "-m", path, "-p", "x");
            Assert.Equal(1, code);
            Assert.Equal("microlm: error: model has no tokenizer (tokenizer.ggml.model is missing)\n", err);
        }
        finally { File.Delete(path); }
    }
}
