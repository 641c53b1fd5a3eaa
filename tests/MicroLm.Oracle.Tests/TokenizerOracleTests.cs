using MicroLm.Models;
using Xunit.Abstractions;

namespace MicroLm.Oracle.Tests;

/// <summary>Our SentencePiece tokenizer against llama.cpp's (llm_tokenizer_spm) on the same GGUF vocabularies:
/// ids must be identical, BOS included.</summary>
public class TokenizerOracleTests(OracleFiles files, ITestOutputHelper output) : IClassFixture<OracleFiles>
{
    public static readonly string[] Texts =
    [
        "Once upon a time",
        "Once upon a time, there was a little girl named Lily. She loved to play outside.",
        "Hello world",
        " leading space",
        "two  spaces   and three",
        "trailing space ",
        "new\nline and\ttab",
        "numbers 12345 and 3.14159!",
        "punctuation: \"quoted\", (parens) [brackets] {braces} — dash… ellipsis?!",
        "unicode: café naïve Ünïcödé",
        "日本語のテキスト",
        "emoji 😀🎉 and a rare 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
        "ALL CAPS and MiXeD CaSe",
        "a",
        " ",
        "",
    ];

    private void Compare(string path)
    {
        using var model = Model.Load(path);
        int checkedTexts = 0;
        foreach (var text in Texts)
        {
            var ours = model.Tokenizer.Encode(text, addBos: true).ToArray();
            var theirs = LlamaCpp.Tokenize(path, text, addBos: true);
            Assert.True(theirs.SequenceEqual(ours),
                $"{Path.GetFileName(path)}: \"{text}\"\n  ours:      {string.Join(",", ours)}\n  llama.cpp: {string.Join(",", theirs)}");
            checkedTexts++;
        }
        output.WriteLine($"{Path.GetFileName(path)}: {checkedTexts} texts tokenized identically (vocabulary {model.Config.VocabSize})");
    }

    [SharedFact]
    public void Stories260K_vocabulary() => Compare(OracleFiles.Shared("gguf/stories260K-F32.gguf"));

    [SharedFact]
    public void Converted_tok512_vocabulary() => Compare(files.ConvertedStories260K());

    [SharedFact]
    public void Llama2_32000_vocabulary() => Compare(files.Synthetic("stories15M-f32-tied", () => SyntheticCases.Get("stories15M-f32-tied")));

    [Fact]
    public void Generated_vocabulary() => Compare(files.Synthetic("mha-f32-untied", () => SyntheticCases.Get("mha-f32-untied")));
}
