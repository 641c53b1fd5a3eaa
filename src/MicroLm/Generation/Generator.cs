using MicroLm.Models;
using MicroLm.Sampling;

namespace MicroLm.Generation;

/// <summary>The generation loop: evaluate the prompt, then sample, stream and feed back one token
/// at a time until the token budget, an end-of-sequence token or the end of the context.</summary>
internal sealed class Generator
{
    private readonly Session _session;
    private readonly Sampler _sampler;
    private readonly int _batch;

    public StopReason StopReason { get; private set; }
    /// <summary>Called with each evaluated position's logits (prompt included), e.g. for tracing.</summary>
    public LogitsHandler? OnLogits { get; init; }
    /// <summary>Stop when a token that ends a document is sampled (<see cref="Tokenizer.IsEndOfGeneration"/>).</summary>
    public bool StopAtEndOfSequence { get; init; } = true;
    /// <summary>Also evaluate the last generated token (so tracing sees its logits).</summary>
    public bool EvaluateLastToken { get; init; }

    public Generator(Session session, SamplingOptions options, int batch = 0)
    {
        _session = session;
        _sampler = new Sampler(options, session.VocabSize, session.ContextLength);
        _batch = batch;
    }

    public IEnumerable<GeneratedToken> Generate(IReadOnlyList<int> prompt, int maxTokens)
    {
        if (prompt.Count == 0) throw new MicroLmException("the prompt has no tokens");
        var s = _session;
        if (s.Position + prompt.Count > s.ContextLength)
            throw new MicroLmException($"the prompt is {prompt.Count} tokens but the context holds {s.ContextLength - s.Position}");
        var tokenizer = s.Model.Tokenizer;
        var utf8 = new Utf8Stream();
        var promptArray = prompt as int[] ?? prompt.ToArray();
        foreach (int t in promptArray) _sampler.Accept(t);
        // Without a logits handler only the last prompt position's logits are needed (the first sample).
        s.Evaluate(promptArray, _batch, OnLogits, lastLogitsOnly: OnLogits == null);
        int previous = promptArray[^1];
        var one = new int[1];
        StopReason = StopReason.MaxTokens;
        for (int i = 0; i < maxTokens; i++)
        {
            int next = _sampler.Sample(s.LastLogits);
            if (StopAtEndOfSequence && tokenizer.IsEndOfGeneration(next))
            {
                StopReason = StopReason.EndOfSequence;
                yield break;
            }
            _sampler.Accept(next);
            string text = utf8.Push(tokenizer.Decode(previous, next));
            int position = s.Position;
            previous = next;
            bool last = i == maxTokens - 1;
            if (!last || EvaluateLastToken)
            {
                if (s.Position >= s.ContextLength)
                {
                    yield return new GeneratedToken(next, text + utf8.Flush(), position);
                    StopReason = StopReason.ContextFull;
                    yield break;
                }
                one[0] = next;
                s.EvaluateNext(one, OnLogits);
            }
            if (last) text += utf8.Flush();
            yield return new GeneratedToken(next, text, position);
        }
    }
}
