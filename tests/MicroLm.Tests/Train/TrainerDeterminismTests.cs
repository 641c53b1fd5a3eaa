using MicroLm.Train;

namespace MicroLm.Tests.Train;

/// <summary>Training is a pure function of its options: the thread count changes no bit, and the trained
/// tokenizer encodes any text losslessly (byte fallback for characters the corpus never had).</summary>
public sealed class TrainerDeterminismTests
{
    private static byte[] Train(int threads)
    {
        string path = Path.Combine(Path.GetTempPath(), $"microlm-det-{Guid.NewGuid():N}.gguf");
        try { return new Training(TrainedModelTests.Tiny with { Threads = threads }, TextWriter.Null).Run(path); }
        finally { File.Delete(path); }
    }

    [Fact]
    public void SameBytesForOneAndThreeThreads()
    {
        var one = Train(1);
        var three = Train(3);
        Assert.True(one.AsSpan().SequenceEqual(three), "the GGUF bytes differ between 1 and 3 threads");
    }

    [Fact]
    public void TheCorpusIsFixedByTheSeedAndVaried()
    {
        var a = StoryCorpus.Generate(11, 200_000);
        var b = StoryCorpus.Generate(11, 200_000);
        var c = StoryCorpus.Generate(12, 200_000);
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.True(a.Distinct().Count() == a.Count, "stories repeat");
        Assert.All(a, s => Assert.Matches("^[A-Z].*[.!?\"]$", s));
    }

    [Fact]
    public void TheTrainedTokenizerRoundTripsAnyText()
    {
        var stories = StoryCorpus.Generate(3, 100_000);
        var vocab = TrainedVocabulary.Train(stories, 500);
        Assert.Equal(500, vocab.Pieces.Length);
        var tok = vocab.CreateTokenizer();
        foreach (var text in new[] { stories[0], "Once upon a time", "Zoë ate 3 crêpes — 🦙!", "  two  spaces\nand a newline" })
        {
            var ids = tok.Encode(text, addBos: true);
            Assert.Equal(TrainedVocabulary.Bos, ids[0]);
            Assert.Equal(text, tok.DecodeAll(ids));
        }
        // Common words are single pieces after training.
        Assert.Equal(2, tok.Encode("Once upon", addBos: false).Count);
    }
}
