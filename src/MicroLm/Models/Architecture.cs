using MicroLm.Generation;
using MicroLm.Gguf;

namespace MicroLm.Models;

/// <summary>One model family: its weights, read from the GGUF file once at load, and how a session runs
/// them. Per-sequence state (each layer's memory, the scratch of a pass) lives in the
/// <see cref="ForwardPass"/> the architecture makes for each session.</summary>
internal abstract class Architecture
{
    public ModelConfig Config { get; }

    protected Architecture(ModelConfig config) => Config = config;

    /// <summary>A session's memory and scratch for batches of up to session.MaxBatch tokens.</summary>
    internal abstract ForwardPass CreatePass(Session session);

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
        "gptneo" => new GptNeo(file, config),
        "falcon-h1" => new FalconH1(file, config),
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
internal enum Backend { Float, Fixed }

/// <summary>What an architecture keeps for one session: each layer's memory (KV caches, windows,
/// recurrent states) and the typed scratch of its forward pass.</summary>
internal abstract class ForwardPass
{
    /// <summary>Every layer's memory, in layer order (a layer may hold more than one, e.g. attention and SSM).</summary>
    public abstract IReadOnlyList<LayerMemory> Memory { get; }

    /// <summary>Evaluates tokens at positions startPos.. (their state goes into <see cref="Memory"/>) and
    /// writes the wanted rows of logits (session.LogitRows) to session.Logits from row 0 on.</summary>
    public abstract void Forward(ReadOnlySpan<int> tokens, int startPos);
}
