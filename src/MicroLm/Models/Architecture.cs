using MicroLm.Generation;
using MicroLm.Gguf;

namespace MicroLm.Models;

/// <summary>One model family's forward pass. Implementations read their weights from the GGUF file
/// once, at load, and keep no per-session state (that lives in <see cref="Session"/>).</summary>
internal abstract class Architecture
{
    public ModelConfig Config { get; }

    protected Architecture(ModelConfig config) => Config = config;

    /// <summary>Scratch buffers for a session evaluating up to <paramref name="maxBatch"/> tokens at a time.</summary>
    internal abstract object CreateScratch(Session session, int maxBatch);

    /// <summary>Evaluates tokens at positions startPos.. (their K/V go into the session's cache) and
    /// writes each token's logits to session.Logits[t·vocab ..].</summary>
    internal abstract void Forward(Session session, ReadOnlySpan<int> tokens, int startPos);

    public static Architecture Create(GgufFile file, ModelConfig config) => config.Architecture switch
    {
        "llama" => new Llama(file, config),
        "gptneox" => new GptNeoX(file, config),
        _ => throw new MicroLmException($"unknown architecture '{config.Architecture}'"),
    };

    internal static GgufTensorInfo Tensor(GgufFile file, string name, params long[] shape)
    {
        var t = file.FindTensor(name) ?? throw new MicroLmException($"model is missing tensor '{name}'");
        var actual = t.Shape.Reverse().SkipWhile(d => d == 1).Reverse().ToArray();
        var expected = shape.Reverse().SkipWhile(d => d == 1).Reverse().ToArray();
        if (!actual.SequenceEqual(expected))
            throw new MicroLmException($"tensor '{name}' has shape {t.ShapeText}, expected [{string.Join(", ", shape)}]");
        return t;
    }
}
