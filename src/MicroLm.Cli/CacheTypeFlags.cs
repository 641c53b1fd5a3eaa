using MicroLm.Generation;
using MicroLm.Models;

namespace MicroLm.Cli;

/// <summary>llama.cpp's -ctk/--cache-type-k and -ctv/--cache-type-v: the KV cache element type
/// (f32, f16, bf16, q8_0, fp8), for every command that runs a session.</summary>
public static class CacheTypeFlags
{
    public static readonly Flag[] Flags =
    [
        Flag.Text("-ctk|--cache-type-k", "TYPE", "KV cache type of the keys: " + string.Join(", ", KvStorageTypes.Names) + " (default f32)"),
        Flag.Text("-ctv|--cache-type-v", "TYPE", "KV cache type of the values: " + string.Join(", ", KvStorageTypes.Names) + " (default f32)"),
    ];

    /// <summary>A session with the cache types the flags name (F32 when absent).</summary>
    internal static Session CreateSession(Model model, Options o, int contextLength, int threads, int maxBatch)
    {
        var k = KvStorageTypes.Parse(o.Get("-ctk") ?? "f32", "--cache-type-k");
        var v = KvStorageTypes.Parse(o.Get("-ctv") ?? "f32", "--cache-type-v");
        if (contextLength < 0 || contextLength > 1 << 20) throw new MicroLmException($"context length {contextLength} is out of range");
        return new Session(model, contextLength, threads, maxBatch, k, v);
    }
}
