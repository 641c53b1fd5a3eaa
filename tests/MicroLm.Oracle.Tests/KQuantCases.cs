using LLama;
using LLama.Native;
using MicroLm.Gguf;
using MicroLm.Synthetic;

namespace MicroLm.Oracle.Tests;

/// <summary>K-quant and IQ4 models for the oracle: a synthetic F32 LLaMA whose every row length is a
/// multiple of 256 (dim 256, hidden 768), quantized by llama.cpp's own quantizer (llama_model_quantize
/// through LLamaSharp), so the files hold exactly the blocks and type mixes llama-quantize writes.</summary>
internal static class KQuantCases
{
    public static readonly SyntheticLlamaOptions Source = new()
    {
        Dim = 256, HiddenDim = 768, Layers = 2, Heads = 4, KvHeads = 2, VocabSize = 512, Seed = 31,
    };

    public static LLamaFtype Ftype(string name) => name switch
    {
        "Q2_K" => LLamaFtype.MOSTLY_Q2_K,
        "Q3_K_M" => LLamaFtype.MOSTLY_Q3_K_M,
        "Q4_K_M" => LLamaFtype.MOSTLY_Q4_K_M,
        "Q5_K_M" => LLamaFtype.MOSTLY_Q5_K_M,
        "Q6_K" => LLamaFtype.MOSTLY_Q6_K,
        "IQ4_XS" => LLamaFtype.MOSTLY_IQ4_XS,
        "IQ4_NL" => LLamaFtype.MOSTLY_IQ4_NL,
        _ => throw new ArgumentException(name),
    };

    /// <summary>Quantizes <paramref name="source"/> to <paramref name="ftype"/> (output tensor included).</summary>
    public static void Quantize(string source, string destination, LLamaFtype ftype)
    {
        LlamaCpp.SystemInfo(); // loads the native library through NativeApi's resolver (the quantizer's own import does not)
        if (!LLamaQuantizer.Quantize(source, destination, ftype, nthread: 1, allowRequantize: true, quantizeOutputTensor: true))
            throw new InvalidOperationException($"llama.cpp could not quantize to {ftype}\n{LlamaCpp.RecentLog()}");
    }

    /// <summary>"name:TYPE" of every matrix in the file, for the test log.</summary>
    public static string TypeSummary(string path)
    {
        using var f = GgufFile.Open(path);
        return string.Join(", ", f.Tensors.Where(t => t.Shape.Length > 1)
            .GroupBy(t => t.Type.Name).Select(g => $"{g.Key}×{g.Count()}"));
    }
}
