using MicroLm.Conversion;
using MicroLm.Gguf;
using MicroLm.Synthetic;
using MicroLm.Tests.Tokenizers;
using MicroLm.Tokenizers;
using Xunit.Abstractions;

namespace MicroLm.Tests.Conversion;

/// <summary>tokenizer.json files written in transformers' layout from the shared vocabularies, converted by
/// `convert hf`'s tokenizer step, must give the ids Hugging Face's tokenizer gives (the shared vectors).</summary>
public sealed class HfTokenizerTests(ITestOutputHelper log) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("microlm-hftok-").FullName;
    public void Dispose() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    private Tokenizer Convert(string vocabName, out GgufFile converted)
    {
        using (var vocab = GgufFile.Open(SharedData.Path("tokenizer-vectors", $"ggml-vocab-{vocabName}.gguf")))
        {
            SyntheticHf.WriteTokenizer(_dir, vocab);
            var w = new GgufWriter();
            HfTokenizer.Write(_dir, w, (int)vocab.Get("tokenizer.ggml.tokens").Count);
            converted = GgufFile.FromMemory(w.ToArray());
        }
        return Tokenizer.Load(converted);
    }

    [SharedTheory]
    [InlineData("gpt-2", "gpt2", "gpt-2")]        // GPT-2 / GPT-Neo (TinyStories)
    [InlineData("mpt", "gpt2", "gpt-2")]          // GPT-NeoX-20B / Pythia
    [InlineData("llama-spm", "llama", "default")] // LLaMA's SentencePiece BPE
    public void Converted_tokenizer_gives_the_Hugging_Face_ids(string vocab, string model, string pre)
    {
        var tokenizer = Convert(vocab, out var file);
        Assert.Equal(model, file.GetString("tokenizer.ggml.model"));
        Assert.Equal(pre, file.GetString("tokenizer.ggml.pre"));
        var cases = ByteLevelBpeTests.ReadCases(SharedData.Path("tokenizer-vectors", $"ggml-vocab-{vocab}.gguf.inp"));
        var expected = ByteLevelBpeTests.ReadExpected(SharedData.Path("tokenizer-vectors", $"ggml-vocab-{vocab}.gguf.out"));
        int failed = 0;
        for (int i = 0; i < cases.Length; i++)
        {
            var ids = tokenizer.Encode(cases[i], addBos: false);
            if (ids.SequenceEqual(expected[i])) continue;
            failed++;
            log.WriteLine($"case {i}: expected {string.Join(' ', expected[i])}\n  actual {string.Join(' ', ids)}");
        }
        log.WriteLine($"{vocab}: {cases.Length - failed}/{cases.Length}");
        Assert.Equal(0, failed);
    }

    [SharedFact]
    public void Own_cases_and_special_tokens()
    {
        var gpt2 = Convert("gpt-2", out var file);
        Assert.Equal(50256L, file.GetInt("tokenizer.ggml.bos_token_id"));
        Assert.Equal(50256L, file.GetInt("tokenizer.ggml.eos_token_id"));
        Assert.Equal([7454, 2402, 257, 640, 11], gpt2.Encode("Once upon a time,", addBos: false));
        var spm = Convert("llama-spm", out var spmFile);
        Assert.Equal(1L, spmFile.GetInt("tokenizer.ggml.bos_token_id"));
        Assert.Equal(0L, spmFile.GetInt("tokenizer.ggml.unknown_token_id"));
        // Byte fallback: a character outside the vocabulary becomes its UTF-8 byte tokens (<0xXX> = byte + 3).
        var ids = spm.Encode("\u0D9E", addBos: false);
        Assert.Equal(["▁", "<0xE0>", "<0xB6>", "<0x9E>"], ids.Select(spm.TokenText));
    }
}
