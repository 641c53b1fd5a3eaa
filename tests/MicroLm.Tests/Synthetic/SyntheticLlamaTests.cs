using MicroLm.Generation;
using MicroLm.Models;
using MicroLm.Synthetic;
using MicroLm.Tensors;

namespace MicroLm.Tests.Synthetic;

public class SyntheticLlamaTests
{
    [SharedFact]
    public void Stories15M_shaped_model_loads_and_generates_with_finite_logits()
    {
        var vocab = SyntheticVocabulary.FromLlama2c(SharedData.Path("models", "llama2c", "tokenizer.bin"), 32000);
        var bytes = SyntheticLlama.ToBytes(new SyntheticLlamaOptions
        {
            Dim = 288, HiddenDim = 768, Layers = 6, Heads = 6, KvHeads = 6, ContextLength = 256,
            Vocabulary = vocab, TiedOutput = true, MatrixType = GgmlType.Q8_0,
        });
        using var model = Model.Load(bytes);
        Assert.Equal(32000, model.Config.VocabSize);
        Assert.Equal(48, model.Config.HeadDim);
        using var session = model.CreateSession(contextLength: 64);
        var prompt = model.Tokenizer.Encode("Once upon a time", addBos: true);
        Assert.Equal([1, 9038, 2501, 263, 931], prompt); // the llama2 vocabulary's ids
        int positions = 0;
        var generator = new Generator(session, SamplingOptions.Greedy)
        {
            StopAtEndOfSequence = false,
            OnLogits = (_, _, logits) => { Assert.True(logits.ToArray().All(float.IsFinite)); positions++; },
        };
        var tokens = generator.Generate(prompt, 20).ToList();
        Assert.Equal(20, tokens.Count);
        Assert.Equal(prompt.Count + 19, positions);
    }

    [Theory]
    [InlineData(GgmlType.F32, false, 4)]
    [InlineData(GgmlType.F16, true, 2)]
    [InlineData(GgmlType.Q4_0, false, 1)]
    [InlineData(GgmlType.Q5_1, true, 2)]
    public void Generated_vocabulary_models_of_any_type_load_and_run(GgmlType type, bool tied, int kvHeads)
    {
        var options = new SyntheticLlamaOptions { MatrixType = type, TiedOutput = tied, KvHeads = kvHeads, VocabSize = 512 };
        using var model = Model.Load(SyntheticLlama.ToBytes(options));
        Assert.Equal(512, model.Config.VocabSize);
        Assert.Equal(kvHeads, model.Config.KvHeads);
        Assert.Equal(tied, model.File.FindTensor("output.weight") == null);
        using var session = model.CreateSession();
        var ids = model.Tokenizer.Encode("Once upon a time, Lily saw a big dog.", addBos: true);
        Assert.True(ids.Count < 20, $"merges should shorten the text: {ids.Count} tokens");
        Assert.Equal(" Once upon a time, Lily saw a big dog.", " " + model.Tokenizer.DecodeAll(ids));
        var logits = session.Evaluate(ids.ToArray()).ToArray();
        Assert.All(logits, v => Assert.True(float.IsFinite(v)));
        float spread = logits.Max() - logits.Min();
        Assert.InRange(spread, 0.5f, 100f); // sane activations: neither flat nor exploding
    }

    [Fact]
    public void Same_seed_gives_same_bytes_and_types_share_weights()
    {
        var a = SyntheticLlama.ToBytes(new SyntheticLlamaOptions());
        var b = SyntheticLlama.ToBytes(new SyntheticLlamaOptions());
        Assert.Equal(a, b);
        var c = SyntheticLlama.ToBytes(new SyntheticLlamaOptions { Seed = 2 });
        Assert.NotEqual(a, c);
        var vocab = SyntheticVocabulary.Generated(1000);
        Assert.Equal(1000, vocab.Count);
        Assert.Equal(vocab.Count, vocab.Pieces.Distinct().Count());
    }
}
