using System.Runtime.CompilerServices;
using System.Text;
using MicroLm.Generation;

namespace MicroLm;

// Text in, tokens out: the public generation calls of a session.
public sealed partial class Session
{
    private readonly List<int> _tokens = [];

    /// <summary>Keeps the evaluated tokens (room for the whole context is taken once, so the decode loop allocates nothing).</summary>
    private void RecordEvaluated(ReadOnlySpan<int> tokens)
    {
        if (_tokens.Capacity < ContextLength) _tokens.Capacity = ContextLength;
        _tokens.AddRange(tokens);
    }

    /// <summary>The tokens evaluated so far, in order (<see cref="Position"/> of them).</summary>
    public IReadOnlyList<int> Tokens => _tokens;

    /// <summary>Why the last <see cref="Generate(string, GenerationOptions?, CancellationToken)"/> ended.</summary>
    public StopReason StopReason { get; private set; }

    /// <summary>A new session in the same state (same tokens evaluated, same sizes), independent from
    /// then on. The state is rebuilt by evaluating <see cref="Tokens"/> again: by the determinism
    /// contract its bits equal this session's, whatever the batch.</summary>
    public Session Fork()
    {
        var copy = new Session(Model, ContextLength, Team.Count, MaxBatch, KeyStorage, ValueStorage);
        try
        {
            if (_tokens.Count > 0) copy.Evaluate(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_tokens), lastLogitsOnly: true);
            return copy;
        }
        catch { copy.Dispose(); throw; }
    }

    /// <summary>Tokens of a prompt as <see cref="Generate(string, GenerationOptions?, CancellationToken)"/> reads it.</summary>
    public List<int> Tokenize(string prompt, GenerationOptions? options = null)
    {
        options ??= Default;
        var tokenizer = Model.Tokenizer;
        bool bos = Position == 0 && (options.AddBos ?? (tokenizer.AddBos && !StartsWithBos(prompt, options.ParseSpecialTokens)));
        var tokens = tokenizer.Encode(prompt, bos, options.ParseSpecialTokens);
        if (tokens.Count == 0 && Position == 0 && tokenizer.BosId >= 0) tokens.Add(tokenizer.BosId);
        return tokens;
    }

    private bool StartsWithBos(string prompt, bool parseSpecial)
    {
        var t = Model.Tokenizer;
        if (!parseSpecial || t.BosId < 0) return false;
        string bos = t.TokenText(t.BosId);
        return bos.Length > 0 && prompt.StartsWith(bos, StringComparison.Ordinal);
    }

    private static readonly GenerationOptions Default = new();

    /// <summary>Evaluates the prompt after what the session holds, then samples and streams tokens
    /// until <see cref="GenerationOptions.MaxTokens"/>, an end-of-sequence token, a stop sequence or
    /// the end of the context (<see cref="StopReason"/> says which). Runs as it is enumerated.</summary>
    public IEnumerable<GeneratedToken> Generate(string prompt, GenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        options ??= Default;
        options.Validate();
        return GenerateCore(Tokenize(prompt, options), options, cancellationToken);
    }

    /// <summary>As <see cref="Generate(string, GenerationOptions?, CancellationToken)"/>, from token ids.</summary>
    public IEnumerable<GeneratedToken> Generate(IReadOnlyList<int> prompt, GenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        options ??= Default;
        options.Validate();
        return GenerateCore(prompt, options, cancellationToken);
    }

    /// <summary>As <see cref="Generate(string, GenerationOptions?, CancellationToken)"/>, computed on the
    /// thread pool so that the caller's thread is never blocked.</summary>
    public async IAsyncEnumerable<GeneratedToken> GenerateAsync(string prompt, GenerationOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var e = Generate(prompt, options, cancellationToken).GetEnumerator();
        while (await Task.Run(e.MoveNext, cancellationToken).ConfigureAwait(false))
            yield return e.Current;
    }

    /// <summary>Generates and returns the whole text.</summary>
    public string GenerateText(string prompt, GenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        var text = new StringBuilder();
        foreach (var t in Generate(prompt, options, cancellationToken)) text.Append(t.Text);
        return text.ToString();
    }

    private IEnumerable<GeneratedToken> GenerateCore(IReadOnlyList<int> prompt, GenerationOptions o, CancellationToken ct)
    {
        if (prompt.Count == 0) throw new MicroLmException("the prompt has no tokens");
        if (Position + prompt.Count > ContextLength)
            throw new MicroLmException($"the prompt is {prompt.Count} tokens but the context has room for {ContextLength - Position}");
        int room = ContextLength - Position - prompt.Count;
        int max = o.MaxTokens < 0 ? room : System.Math.Min(o.MaxTokens, room);
        bool contextLimited = o.MaxTokens < 0 || room < o.MaxTokens;
        ct.ThrowIfCancellationRequested();
        var generator = new Generator(this, o.Sampling) { StopAtEndOfSequence = o.StopAtEndOfSequence };
        var stops = o.StopSequences.Where(s => !string.IsNullOrEmpty(s)).ToArray();
        StopReason = StopReason.MaxTokens;
        if (stops.Length == 0)
        {
            foreach (var t in generator.Generate(prompt, max))
            {
                ct.ThrowIfCancellationRequested();
                yield return t;
            }
            StopReason = contextLimited && generator.StopReason == StopReason.MaxTokens ? StopReason.ContextFull : generator.StopReason;
            yield break;
        }

        // Stop sequences: text that may be the start of one is held back until it cannot be; each
        // token is yielded one step late so that what is held at the end goes out with the last token.
        var pending = new StringBuilder();
        GeneratedToken? previous = null;
        string previousText = "";
        foreach (var t in generator.Generate(prompt, max))
        {
            ct.ThrowIfCancellationRequested();
            pending.Append(t.Text);
            string text = pending.ToString();
            int stopAt = -1;
            foreach (var s in stops)
            {
                int i = text.IndexOf(s, StringComparison.Ordinal);
                if (i >= 0 && (stopAt < 0 || i < stopAt)) stopAt = i;
            }
            if (previous is { } p) yield return p with { Text = previousText };
            if (stopAt >= 0)
            {
                StopReason = StopReason.StopSequence;
                yield return t with { Text = text[..stopAt] };
                yield break;
            }
            int hold = 0;
            foreach (var s in stops) hold = System.Math.Max(hold, OverlapOfSuffixWithPrefix(text, s));
            previousText = text[..^hold];
            pending.Remove(0, text.Length - hold);
            previous = t;
        }
        if (previous is { } last) yield return last with { Text = previousText + pending };
        StopReason = contextLimited && generator.StopReason == StopReason.MaxTokens ? StopReason.ContextFull : generator.StopReason;
    }

    /// <summary>Length of the longest suffix of <paramref name="text"/> that is a proper prefix of <paramref name="stop"/>.</summary>
    private static int OverlapOfSuffixWithPrefix(string text, string stop)
    {
        for (int n = System.Math.Min(text.Length, stop.Length - 1); n > 0; n--)
            if (string.CompareOrdinal(text, text.Length - n, stop, 0, n) == 0) return n;
        return 0;
    }
}
