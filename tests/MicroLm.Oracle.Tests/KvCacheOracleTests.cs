using LLama.Native;
using MicroLm.Generation;
using MicroLm.Models;
using Xunit.Abstractions;

namespace MicroLm.Oracle.Tests;

/// <summary>`-ctk f16 -ctv f16` against llama.cpp's F16 KV cache on the same file and tokens.</summary>
public sealed class KvCacheOracleTests(ITestOutputHelper output)
{
    [SharedFact]
    public void F16_cache_agrees_with_llama_cpp_f16_cache()
    {
        string path = OracleFiles.Shared("gguf/stories260K-F32.gguf");
        using var model = Model.Load(path);
        var prompt = model.Tokenizer.Encode("Once upon a time, there was a little girl named Lily.", true).ToArray();
        var f16 = KvStorageTypes.Parse("f16", "-ctk");
        using var session = new Session(model, 64, 1, prompt.Length, f16, f16);
        var ours = new List<float[]>();
        var tokens = new List<int>(prompt);
        session.Evaluate(prompt, onLogits: (_, _, l) => ours.Add(l.ToArray()));
        for (int i = 0; i < 24; i++)
        {
            var last = ours[^1];
            int next = Array.IndexOf(last, last.Max());
            tokens.Add(next);
            ours.Add(session.Evaluate([next]).ToArray());
        }
        var theirs = LlamaCpp.Logits(path, [.. tokens], prompt.Length, GGMLType.GGML_TYPE_F16);
        double max = 0;
        for (int p = 0; p < theirs.Length; p++)
            for (int v = 0; v < theirs[p].Length; v++) max = System.Math.Max(max, System.Math.Abs(theirs[p][v] - ours[p][v]));
        var f32 = LlamaCpp.Logits(path, [.. tokens], prompt.Length);
        double cacheEffect = 0;
        for (int p = 0; p < f32.Length; p++)
            for (int v = 0; v < f32[p].Length; v++) cacheEffect = System.Math.Max(cacheEffect, System.Math.Abs(theirs[p][v] - f32[p][v]));
        output.WriteLine($"{theirs.Length} positions: max |Δ| ours(f16 cache) vs llama.cpp(f16 cache) = {max:G3}; llama.cpp f16 vs f32 cache = {cacheEffect:G3}");
        // llama.cpp's F16-cache attention rounds q to F16 for K·q and the softmax weights to F16 for V·w (its
        // F16 matmul takes F16 on both sides); we keep q and the weights in F32 and round only the stored
        // rows. That is the same 2^-11 relative rounding as its F16 weights, hence the F16 tolerance of 2e-2.
        Assert.True(max < 2e-2, $"max |Δ| {max}");
    }
}
