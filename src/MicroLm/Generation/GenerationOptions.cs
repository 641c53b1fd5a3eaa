namespace MicroLm;

/// <summary>One generated token: its id, the text it completes (possibly empty while a UTF-8
/// character is unfinished or while text might be the start of a stop sequence), and its position.</summary>
public readonly record struct GeneratedToken(int Id, string Text, int Position);

/// <summary>Why a generation ended.</summary>
public enum StopReason { MaxTokens, EndOfSequence, ContextFull, StopSequence }

/// <summary>What <see cref="Session.Generate(string, GenerationOptions?, CancellationToken)"/> does with a prompt.</summary>
public sealed record GenerationOptions
{
    /// <summary>Most tokens to generate (fewer if the context ends first); -1: until the context is full.</summary>
    public int MaxTokens { get; init; } = 256;
    public SamplingOptions Sampling { get; init; } = new();
    /// <summary>Strings that end the generation; the text yielded stops just before the first one.</summary>
    public IReadOnlyList<string> StopSequences { get; init; } = [];
    /// <summary>Start the prompt with BOS (only when the session is empty). Null: as the model asks
    /// ("tokenizer.ggml.add_bos_token"), unless the prompt's text already starts with the BOS token.</summary>
    public bool? AddBos { get; init; }
    /// <summary>Text of special tokens in the prompt ("&lt;|im_start|&gt;", "&lt;/s&gt;") becomes those
    /// tokens; otherwise it is ordinary text. Chat prompts need this.</summary>
    public bool ParseSpecialTokens { get; init; }
    /// <summary>Stop when the model emits an end-of-sequence token.</summary>
    public bool StopAtEndOfSequence { get; init; } = true;

    internal void Validate()
    {
        if (MaxTokens < -1) throw new MicroLmException($"max tokens must be -1 or more, got {MaxTokens}");
        ArgumentNullException.ThrowIfNull(Sampling);
        ArgumentNullException.ThrowIfNull(StopSequences);
    }
}
