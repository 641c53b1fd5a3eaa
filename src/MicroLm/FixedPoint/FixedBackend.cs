using MicroLm.Gguf;
using MicroLm.Models;

namespace MicroLm.FixedPoint;

/// <summary>The fixed-point backend's architectures. A family joins by adding its forward pass here
/// (GPT-Neo: LayerNorm, attention with scale 2³² and a window, GELU; Falcon-H1: its recurrent state in
/// integers beside the KV cache).</summary>
internal static class FixedBackend
{
    public static readonly string[] Architectures = ["llama", "gptneox"];

    /// <param name="epsBits">The norm epsilon as binary32 bits.</param>
    /// <param name="ropeBaseBits">The rope frequency base as binary32 bits.</param>
    public static Architecture Create(GgufFile file, ModelConfig config, uint epsBits, uint ropeBaseBits) => config.Architecture switch
    {
        "llama" => new FixedLlama(file, config, epsBits, ropeBaseBits),
        "gptneox" => new FixedGptNeoX(file, config, epsBits, ropeBaseBits),
        _ => throw new MicroLmException($"the fixed-point backend does not run '{config.Architecture}' models yet (it runs: {string.Join(", ", Architectures)})"),
    };

    /// <summary>The fixed backend keeps its own KV cache in Q16.16; a session asking for another cache
    /// element type (-ctk/-ctv) is refused rather than silently ignored.</summary>
    public static void RequireOwnCache(Session s)
    {
        KvStorage.Factory f32 = KvStorage.F32;
        if (s.KeyStorage != f32 || s.ValueStorage != f32)
            throw new MicroLmException("the fixed-point backend keeps its KV cache in Q16.16 integers; the cache types of -ctk/-ctv apply to the float backend only");
    }
}
