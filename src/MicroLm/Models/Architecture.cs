using MicroLm.Generation;
using MicroLm.Gguf;

namespace MicroLm.Models;

/// <summary>One model family's forward pass. Implementations read their weights from the GGUF file
/// once, at load, and keep no per-session state (that lives in <see cref="Session"/>).</summary>
public abstract class Architecture
{
    public ModelConfig Config { get; }

    protected Architecture(ModelConfig config) => Config = config;

    /// <summary>Scratch buffers for a session evaluating up to <paramref name="maxBatch"/> tokens at a time.</summary>
    internal abstract object CreateScratch(Session session, int maxBatch);

    /// <summary>Evaluates tokens at positions startPos.. (their K/V go into the session's cache) and
    /// writes each token's logits to session.Logits[t·vocab ..].</summary>
    internal abstract void Forward(Session session, ReadOnlySpan<int> tokens, int startPos);

    public static Architecture Create(GgufFile file, ModelConfig config) => Create(file, config, Backend.Float);

    /// <summary>The forward pass for <paramref name="backend"/>. The fixed-point backend receives the
    /// configuration's two floats (norm epsilon, rope base) as their bits, which it decodes in integers.</summary>
    public static Architecture Create(GgufFile file, ModelConfig config, Backend backend) => backend switch
    {
        Backend.Float => CreateFloat(file, config),
        Backend.Fixed => FixedPoint.FixedBackend.Create(file, config,
            BitConverter.SingleToUInt32Bits(config.NormEpsilon), BitConverter.SingleToUInt32Bits(config.RopeFreqBase)),
        _ => throw new ArgumentOutOfRangeException(nameof(backend)),
    };

    private static Architecture CreateFloat(GgufFile file, ModelConfig config) => config.Architecture switch
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

/// <summary>How a model computes: <see cref="Float"/> (binary32, deterministic by construction) or
/// <see cref="Fixed"/> (integers only between the weights and the logits; docs/fixed-point.md).</summary>
public enum Backend { Float, Fixed }
