using MicroLm.Generation;
using MicroLm.Synthetic;
using MicroLm.Tokenizers;

namespace MicroLm.Tests.Api;

/// <summary>The public generation calls (Session.Generate and friends) against the internal generator
/// the CLI uses: same tokens for the same seed, stop sequences cut where they should, forks continue
/// identically, cancellation stops.</summary>
public class PublicApiTests
{
    private static string Stories => SharedData.Path("models", "gguf", "stories260K-F32.gguf");

    [SharedFact]
    public void Generate_gives_the_generators_tokens_for_a_seed()
    {
        using var model = Model.Load(Stories);
        var sampling = new SamplingOptions { Temperature = 0.9f, Seed = 7 };
        using var a = model.CreateSession();
        var expected = new Generator(a, sampling).Generate(model.Tokenizer.Encode("Once upon a time", true), 40).Select(t => t.Id).ToList();
        using var b = model.CreateSession();
        var got = b.Generate("Once upon a time", new GenerationOptions { MaxTokens = 40, Sampling = sampling }).ToList();
        Assert.Equal(expected, got.Select(t => t.Id));
        Assert.Equal(b.Position, b.Tokens.Count);
    }

    [SharedFact]
    public async Task Async_stream_equals_the_synchronous_one_and_text_joins()
    {
        using var model = Model.Load(File.OpenRead(Stories));
        var o = new GenerationOptions { MaxTokens = 30, Sampling = SamplingOptions.Greedy };
        using var s1 = model.CreateSession();
        var sync = s1.Generate("Lily", o).ToList();
        using var s2 = model.CreateSession();
        var list = new List<GeneratedToken>();
        await foreach (var t in s2.GenerateAsync("Lily", o)) list.Add(t);
        Assert.Equal(sync, list);
        using var s3 = model.CreateSession();
        Assert.Equal(string.Concat(sync.Select(t => t.Text)), s3.GenerateText("Lily", o));
    }

    [SharedFact]
    public void Stop_sequence_ends_the_text_just_before_it()
    {
        using var model = Model.Load(Stories);
        var o = new GenerationOptions { MaxTokens = 100, Sampling = SamplingOptions.Greedy };
        using var s = model.CreateSession();
        string full = s.GenerateText("Once upon a time", o);
        // A stop string that starts in the middle of the text, spanning token boundaries.
        int cut = full.Length / 2;
        string stop = full.Substring(cut, 5);
        int first = full.IndexOf(stop, StringComparison.Ordinal);
        s.Reset();
        string stopped = s.GenerateText("Once upon a time", o with { StopSequences = ["no such text", stop] });
        Assert.Equal(full[..first], stopped);
        Assert.Equal(StopReason.StopSequence, s.StopReason);
        // Without a match the text is whole, including what was held back as a possible start.
        s.Reset();
        Assert.Equal(full, s.GenerateText("Once upon a time", o with { StopSequences = [full[^3..] + "\u0001"] }));
        Assert.NotEqual(StopReason.StopSequence, s.StopReason);
    }

    [SharedFact]
    public void Fork_continues_exactly_as_the_original()
    {
        using var model = Model.Load(Stories);
        using var s = model.CreateSession();
        var o = new GenerationOptions { MaxTokens = 10, Sampling = new SamplingOptions { Seed = 3 } };
        s.Generate("Once upon a time", o).ToList();
        using var f = s.Fork();
        Assert.Equal(s.Tokens, f.Tokens);
        Assert.Equal(s.LastLogits.ToArray(), f.LastLogits.ToArray());
        var a = s.Generate(" and", o).Select(t => t.Id).ToList();
        var b = f.Generate(" and", o).Select(t => t.Id).ToList();
        Assert.Equal(a, b);
    }

    [SharedFact]
    public void Cancellation_stops_the_stream_and_limits_are_checked()
    {
        using var model = Model.Load(Stories);
        using var s = model.CreateSession(contextLength: 16);
        using var cts = new CancellationTokenSource();
        int n = 0;
        Assert.Throws<OperationCanceledException>(() =>
        {
            foreach (var _ in s.Generate("Once", new GenerationOptions { MaxTokens = 10 }, cts.Token)) if (++n == 3) cts.Cancel();
        });
        Assert.Equal(3, n);
        s.Reset();
        var all = s.Generate("Once", new GenerationOptions { MaxTokens = -1, StopAtEndOfSequence = false }).ToList();
        Assert.Equal(StopReason.ContextFull, s.StopReason);
        Assert.Equal(16 - 2, all.Count);
        s.Reset();
        Assert.Throws<MicroLmException>(() => s.Generate(string.Concat(Enumerable.Repeat("once upon a time ", 20))).ToList());
        Assert.Throws<MicroLmException>(() => model.CreateSession(threads: 0));
    }

    [Fact]
    public void Special_token_text_becomes_the_token_only_when_asked()
    {
        var v = SyntheticVocabulary.Generated(320);
        var vocab = new SyntheticVocabulary([.. v.Pieces, "<|im_start|>", "<|im_end|>"], [.. v.Scores, 0, 0],
            [.. v.Types, SentencePieceTokenizer.TypeControl, SentencePieceTokenizer.TypeControl]);
        using var model = Model.Load(SyntheticLlama.ToBytes(new SyntheticLlamaOptions { Vocabulary = vocab }));
        var t = model.Tokenizer;
        var parsed = t.Encode("<s><|im_start|>user\nhi<|im_end|>", false, parseSpecial: true);
        Assert.Equal([1, 320], parsed.Take(2));
        Assert.Equal(321, parsed[^1]);
        Assert.Equal(t.Encode("user\nhi", false), parsed.Skip(2).SkipLast(1));
        Assert.DoesNotContain(320, t.Encode("<|im_start|>user", false));
        // The session adds no second BOS when the text starts with it.
        using var s = model.CreateSession();
        Assert.Equal(1, s.Tokenize("<s>hi", new GenerationOptions { ParseSpecialTokens = true }).Count(id => id == 1));
        Assert.Equal([1, 1], s.Tokenize("<s>hi", new GenerationOptions { ParseSpecialTokens = false }).Take(1).Append(s.Tokenize("<s>hi", new GenerationOptions { ParseSpecialTokens = true })[0]));
    }
}
