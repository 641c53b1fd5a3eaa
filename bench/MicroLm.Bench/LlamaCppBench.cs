using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using LLama;
using LLama.Common;
using LLama.Native;

namespace MicroLm.Bench;

/// <summary>llama.cpp through LLamaSharp, set up as MicroLm runs: F32 KV cache, no flash attention, the
/// given threads for both single tokens and batches, the whole prompt in one batch (and one ubatch).
/// Measured as llama-bench measures: each run clears the cache; pp decodes one batch of p tokens with
/// logits for the last only; tg decodes n tokens one by one, each with its logits.</summary>
internal sealed class LlamaCppBench : IDisposable
{
    private static readonly List<string> Log = [];
    private static bool _configured;
    private readonly LLamaWeights _weights;
    private readonly LLamaContext _context;
    private readonly LLamaBatch _batch = new();

    public static void Configure(IsaLevel isa = IsaLevel.Native)
    {
        if (_configured) return;
        // The CPU build matching the requested level (LLamaSharp ships noavx/avx/avx2/avx512 variants).
        NativeLibraryConfig.All.WithAvx(Isa.LlamaCppLevel(isa));
        // Keep llama.cpp's chatter out of the table; must be set before the native library loads.
        NativeLibraryConfig.All.WithLogCallback((level, message) =>
        {
            lock (Log) { if (Log.Count > 2000) Log.RemoveRange(0, 1000); Log.Add($"{level}: {message.TrimEnd()}"); }
        });
        _configured = true;
    }

    /// <param name="inMemory">false: the file is mapped (llama.cpp's own default, llama_model_default_params; LLamaSharp's
    /// ModelParams would otherwise read it into memory); true: read into memory (load mode none).</param>
    public LlamaCppBench(string path, int threads, int contextSize, int batch, bool inMemory)
    {
        Configure();
        var p = new ModelParams(path)
        {
            ContextSize = (uint)contextSize,
            BatchSize = (uint)batch,
            UBatchSize = (uint)batch,
            Threads = threads,
            BatchThreads = threads,
            GpuLayerCount = 0,
            TypeK = GGMLType.GGML_TYPE_F32,
            TypeV = GGMLType.GGML_TYPE_F32,
            FlashAttention = false,
            LoadMode = inMemory ? LLamaLoadMode.None : LLamaLoadMode.MemoryMap,
        };
        _weights = LLamaWeights.LoadFromFile(p);
        _context = _weights.CreateContext(p);
    }

    public double Prompt(int[] prompt)
    {
        _context.NativeHandle.MemoryClear();
        _batch.Clear();
        for (int i = 0; i < prompt.Length; i++) _batch.Add((LLamaToken)prompt[i], i, LLamaSeqId.Zero, i == prompt.Length - 1);
        long start = Stopwatch.GetTimestamp();
        Decode();
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    public double Generate(ReadOnlySpan<int> tokens)
    {
        _context.NativeHandle.MemoryClear();
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < tokens.Length; i++)
        {
            _batch.Clear();
            _batch.Add((LLamaToken)tokens[i], i, LLamaSeqId.Zero, true);
            Decode();
        }
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    private void Decode()
    {
        var r = _context.Decode(_batch);
        if (r != DecodeResult.Ok) throw new InvalidOperationException($"llama_decode failed: {r}\n{RecentLog()}");
        _context.NativeHandle.Synchronize();
    }

    /// <summary>"LLamaSharp 0.30.0 with LLamaSharp.Backend.Cpu 0.30.0 (llama.cpp, AVX512 build)".</summary>
    public static string Version()
    {
        Configure();
        var info = Marshal.PtrToStringUTF8(NativeApi.llama_print_system_info()) ?? "";
        string variant = info.Contains("AVX512 = 1", StringComparison.Ordinal) ? "AVX512"
            : info.Contains("AVX2 = 1", StringComparison.Ordinal) ? "AVX2"
            : info.Contains("AVX = 1", StringComparison.Ordinal) ? "AVX" : "no-AVX";
        string version = typeof(LlamaCppBench).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(m => m.Key == "LLamaSharpVersion")?.Value ?? "?";
        return $"LLamaSharp {version} with LLamaSharp.Backend.Cpu {version} (llama.cpp, {variant} build)";
    }

    private static string RecentLog()
    {
        lock (Log) return string.Join("\n", Log.TakeLast(40));
    }

    public void Dispose()
    {
        _context.Dispose();
        _weights.Dispose();
    }
}
