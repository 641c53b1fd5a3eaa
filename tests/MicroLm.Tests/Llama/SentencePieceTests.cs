using System.Globalization;
using System.Text.Json;
using MicroLm.Gguf;
using MicroLm.Models;
using MicroLm.Tokenizers;
using Xunit.Abstractions;

namespace MicroLm.Tests.Llama;

public class SentencePieceTests(ITestOutputHelper output)
{
    [SharedTheory]
    [InlineData("encode_tok512.txt", "tok512.bin", 512)]
    [InlineData("encode_tok32000.txt", "tokenizer.bin", 32000)]
    public void EncodesLikeLlama2c(string reference, string tokenizerFile, int vocab)
    {
        var tokenizer = Llama2cCheckpoint.LoadTokenizer(File.ReadAllBytes(SharedData.Path("models", "llama2c", tokenizerFile)), vocab);
        int cases = 0;
        foreach (var line in File.ReadAllLines(SharedData.Path("reference", "llama2c", reference)))
        {
            if (line.Length == 0) continue;
            var parts = line.Split('\t');
            string text = JsonSerializer.Deserialize<string>(parts[0])!;
            var expected = parts[1].Split(' ').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToList();
            Assert.Equal(expected, tokenizer.Encode(text, addBos: true));
            cases++;
        }
        output.WriteLine($"{reference}: {cases} cases equal");
        Assert.True(cases >= 3);
    }

    [SharedTheory]
    [InlineData("ggml-vocab-llama-spm.gguf")]
    [InlineData("ggml-vocab-phi-3.gguf")]
    public void MatchesLlamaCppVectors(string vocab)
    {
        using var file = GgufFile.Open(SharedData.Path("tokenizer-vectors", vocab));
        var tokenizer = Tokenizer.Load(file);
        var (inputs, outputs) = TokenizerVectors.Read(SharedData.Path("tokenizer-vectors", vocab));
        int passed = 0;
        var failures = new List<string>();
        for (int i = 0; i < inputs.Length; i++)
        {
            var got = tokenizer.Encode(inputs[i], addBos: false);
            if (got.SequenceEqual(outputs[i])) passed++;
            else failures.Add($"case {i} {JsonSerializer.Serialize(inputs[i])}: expected [{string.Join(' ', outputs[i])}], got [{string.Join(' ', got)}]");
        }
        output.WriteLine($"{vocab}: {passed}/{inputs.Length} passed");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.Equal(46, inputs.Length);
    }

    [SharedFact]
    public void DecodingDropsTheSpaceAfterBosAndRoundTrips()
    {
        using var file = GgufFile.Open(SharedData.Path("tokenizer-vectors", "ggml-vocab-llama-spm.gguf"));
        var tokenizer = Tokenizer.Load(file);
        foreach (var text in new[] { "Hello world", "Führer 日本語 🦙 tab\there", "  two leading spaces" })
        {
            var ids = tokenizer.Encode(text, addBos: true);
            Assert.Equal(text, tokenizer.DecodeAll(ids));
        }
    }
}

/// <summary>llama.cpp's tokenizer test vectors: .inp cases separated by "\n__ggml_vocab_test__\n", .out one line of ids per case.</summary>
public static class TokenizerVectors
{
    public static (string[] Inputs, int[][] Outputs) Read(string vocabPath)
    {
        string inp = File.ReadAllText(vocabPath + ".inp");
        var inputs = inp.Split("\n__ggml_vocab_test__\n").ToList();
        if (inputs.Count > 0 && inputs[^1].Length == 0) inputs.RemoveAt(inputs.Count - 1);
        var outputs = File.ReadAllText(vocabPath + ".out").Split('\n').Take(inputs.Count)
            .Select(l => l.Trim().Length == 0 ? [] : l.Trim().Split(' ').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray())
            .ToArray();
        return (inputs.ToArray(), outputs);
    }
}
