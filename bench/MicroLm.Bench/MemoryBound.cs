using System.Runtime.Intrinsics;
using MicroLm.Gguf;

namespace MicroLm.Bench;

/// <summary>The physical limit of a cell: the weight bytes one evaluation reads ÷ the single-thread read bandwidth
/// measured here over a working set of the same size. Decode reads every matrix once per token; prefill reads them once per batch of p tokens.</summary>
internal static class MemoryBound
{
    /// <summary>Bytes per second one thread streams over a working set of <paramref name="bytes"/> read again and
    /// again, as decode reads the weights: the best of several passes (a set that fits in the caches is read from
    /// them, as the model's weights would be), 32 bytes per load.</summary>
    public static double ReadBandwidth(long bytes)
    {
        int longs = (int)System.Math.Clamp(bytes / sizeof(long), 1 << 17, 1L << 28) & ~15;
        var buffer = GC.AllocateUninitializedArray<long>(longs, pinned: true);
        for (int i = 0; i < buffer.Length; i += 512) buffer[i] = i; // touch every page
        int passes = (int)System.Math.Clamp((4L << 30) / ((long)longs * sizeof(long)), 5, 2000);
        double best = 0;
        long sink = 0;
        sink += Sum(buffer); // warm
        for (int pass = 0; pass < passes; pass++)
        {
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            sink += Sum(buffer);
            double s = System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds;
            best = System.Math.Max(best, (double)longs * sizeof(long) / s);
        }
        GC.KeepAlive(sink);
        return best;
    }

    private static long Sum(long[] a)
    {
        var s0 = Vector256<long>.Zero; var s1 = s0; var s2 = s0; var s3 = s0;
        ref long r = ref a[0];
        int i = 0;
        for (; i + 16 <= a.Length; i += 16)
        {
            s0 += Vector256.LoadUnsafe(ref r, (nuint)i);
            s1 += Vector256.LoadUnsafe(ref r, (nuint)(i + 4));
            s2 += Vector256.LoadUnsafe(ref r, (nuint)(i + 8));
            s3 += Vector256.LoadUnsafe(ref r, (nuint)(i + 12));
        }
        return Vector256.Sum(s0 + s1 + s2 + s3);
    }

    /// <summary>Weight bytes a decode step reads: every tensor, except that the token embedding contributes one row
    /// unless it is also the classifier (tied output).</summary>
    public static long BytesPerToken(GgufFile file)
    {
        long total = 0;
        bool untied = file.FindTensor("output.weight") != null;
        foreach (var t in file.Tensors)
        {
            if (untied && t.Name == "token_embd.weight") { total += t.ByteSize / System.Math.Max(1, t.Rows); continue; }
            total += t.ByteSize;
        }
        return total;
    }
}
