using System.Runtime.InteropServices;
using System.Text;
using LLama;
using LLama.Common;
using LLama.Native;

namespace MicroLm.Oracle.Tests;

/// <summary>llama.cpp (LLamaSharp's native CPU build, the AVX-512/AVX2/AVX/none variant this CPU supports)
/// set up to compute what MicroLm computes: F32 KV cache, no flash attention (so attention is the
/// plain soft_max(K·q)·V path), one thread, the prompt evaluated as one batch with logits for every position.</summary>
internal static class LlamaCpp
{
    private static readonly object Gate = new();
    private static readonly List<string> Log = [];
    private static bool _configured;

    private static void Configure()
    {
        lock (Gate)
        {
            if (_configured) return;
            // Keep llama.cpp's log for failures instead of printing it; must be set before the library loads.
            NativeLibraryConfig.All.WithLogCallback((level, message) =>
            {
                lock (Log) { if (Log.Count > 4000) Log.RemoveRange(0, 2000); Log.Add($"{level}: {message.TrimEnd()}"); }
            });
            _configured = true;
        }
    }

    /// <summary>The native library's feature line, e.g. "CPU : SSE3 = 1 | … | AVX512 = 1 | …".</summary>
    public static string SystemInfo()
    {
        Configure();
        return Marshal.PtrToStringUTF8(NativeApi.llama_print_system_info()) ?? "";
    }

    public static string LoadedLibrary()
    {
        Configure();
        SystemInfo();
        lock (Log) return Log.LastOrDefault(l => l.Contains("Successfully loaded") && l.Contains("libllama")) ?? "(unknown)";
    }

    private static ModelParams Params(string path, int contextSize, int batch, GGMLType cache = GGMLType.GGML_TYPE_F32) => new(path)
    {
        ContextSize = (uint)contextSize,
        BatchSize = (uint)batch,
        UBatchSize = (uint)batch,
        Threads = 1,
        BatchThreads = 1,
        GpuLayerCount = 0,
        TypeK = cache,
        TypeV = cache,
        FlashAttention = false,
    };

    /// <summary>Logits at every position: tokens[..promptLength] as one batch, then the rest one at a time.</summary>
    public static float[][] Logits(string path, int[] tokens, int promptLength, GGMLType cache = GGMLType.GGML_TYPE_F32)
    {
        Configure();
        var p = Params(path, tokens.Length, System.Math.Max(promptLength, 1), cache);
        using var weights = LLamaWeights.LoadFromFile(p);
        using var context = weights.CreateContext(p);
        var result = new float[tokens.Length][];
        var batch = new LLamaBatch();
        for (int i = 0; i < promptLength; i++) batch.Add((LLamaToken)tokens[i], i, LLamaSeqId.Zero, true);
        Decode(context, batch);
        for (int i = 0; i < promptLength; i++) result[i] = context.NativeHandle.GetLogitsIth(i).ToArray();
        for (int i = promptLength; i < tokens.Length; i++)
        {
            batch.Clear();
            batch.Add((LLamaToken)tokens[i], i, LLamaSeqId.Zero, true);
            Decode(context, batch);
            result[i] = context.NativeHandle.GetLogitsIth(0).ToArray();
        }
        return result;
    }

    private static void Decode(LLamaContext context, LLamaBatch batch)
    {
        var r = context.Decode(batch);
        if (r != DecodeResult.Ok) throw new InvalidOperationException($"llama_decode failed: {r}\n{RecentLog()}");
    }

    public static int[] Tokenize(string path, string text, bool addBos)
    {
        Configure();
        var p = Params(path, 64, 64);
        p.VocabOnly = true;
        using var weights = LLamaWeights.LoadFromFile(p);
        return weights.Tokenize(text, addBos, false, Encoding.UTF8).Select(t => (int)t).ToArray();
    }

    public static string RecentLog()
    {
        lock (Log) return string.Join("\n", Log.TakeLast(40));
    }
}
