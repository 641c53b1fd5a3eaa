namespace MicroLm;

/// <summary>How the next token is chosen: llama.cpp's samplers and defaults. The same options and
/// seed give the same tokens on every platform.</summary>
public sealed record SamplingOptions
{
    /// <summary>0 (or less) means greedy: the most likely token, the lowest id on ties.</summary>
    public float Temperature { get; init; } = 0.8f;
    /// <summary>Keep the K most likely tokens (0: all).</summary>
    public int TopK { get; init; } = 40;
    /// <summary>Keep the smallest set of most likely tokens whose probability reaches P (1: all).</summary>
    public float TopP { get; init; } = 0.95f;
    /// <summary>Drop tokens less likely than MinP × the most likely one (0: none).</summary>
    public float MinP { get; init; } = 0.05f;
    /// <summary>Divide positive (multiply negative) logits of recently seen tokens by this (1: off).</summary>
    public float RepeatPenalty { get; init; } = 1f;
    public int RepeatLastN { get; init; } = 64;
    public ulong Seed { get; init; } = 42;

    public static SamplingOptions Greedy => new() { Temperature = 0 };
}
