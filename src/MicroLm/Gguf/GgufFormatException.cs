namespace MicroLm.Gguf;

/// <summary>The one error a GGUF reader throws for a malformed, truncated or unsupported file:
/// what is wrong and at which byte offset.</summary>
internal sealed class GgufFormatException : MicroLmException
{
    public long Offset { get; }

    public GgufFormatException(string message, long offset)
        : base($"{message} (at byte {offset})")
    {
        Offset = offset;
    }
}
