using MicroLm.Models;
using MicroLm.Synthetic;
using MicroLm.Tensors;

namespace MicroLm.Tests.Sessions;

/// <summary>Session.Evaluate(lastLogitsOnly: true) skips the classifier for all but the last token
/// (what llama.cpp computes for a prompt, and what `microlm bench` measures); it must not change the
/// bits of the logits it does return, nor the KV cache the next tokens see.</summary>
public class LastLogitsOnlyTests
{
    [Theory]
    [InlineData(GgmlType.F32, 0, 1)]
    [InlineData(GgmlType.Q8_0, 5, 2)]
    [InlineData(GgmlType.Q4_0, 1, 1)]
    public void Last_logits_only_gives_the_same_bits(GgmlType type, int batch, int threads)
    {
        using var model = Model.Load(SyntheticLlama.ToBytes(new SyntheticLlamaOptions { MatrixType = type, VocabSize = 512 }));
        var prompt = Enumerable.Range(0, 13).Select(i => 1 + i * 37 % 500).ToArray();
        using var full = model.CreateSession(threads: threads, maxBatch: 8);
        using var last = model.CreateSession(threads: threads, maxBatch: 8);
        float[] expected = full.Evaluate(prompt, batch).ToArray();
        float[] actual = last.Evaluate(prompt, batch, lastLogitsOnly: true).ToArray();
        Assert.Equal(expected, actual);
        Assert.Equal(full.Position, last.Position);
        Assert.Equal(expected, last.LastLogits.ToArray());
        // The cache is the same: the next token gives the same logits.
        Assert.Equal(full.Evaluate([7]).ToArray(), last.Evaluate([7]).ToArray());
        Assert.Equal(full.Evaluate([9, 11], lastLogitsOnly: false).ToArray(), last.Evaluate([9, 11], lastLogitsOnly: true).ToArray());
    }

    [Fact]
    public void Last_logits_only_cannot_feed_a_per_position_handler()
    {
        using var model = Model.Load(SyntheticLlama.ToBytes(new SyntheticLlamaOptions()));
        using var session = model.CreateSession();
        Assert.Throws<ArgumentException>(() => session.Evaluate([1, 2], onLogits: (_, _, _) => { }, lastLogitsOnly: true));
    }
}
