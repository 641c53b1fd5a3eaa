using System.Diagnostics;

namespace MicroLm.Bench;

/// <summary>The timing of the kernel-only modes (--prefill-kernels, --decode-kernels): process CPU time per pass, so a
/// busy machine slows the figures less than wall time would.</summary>
internal static class KernelTiming
{
    /// <summary>The middle value (the mean of the two middle ones for an even count).</summary>
    public static double Median(IEnumerable<double> xs)
    {
        var s = xs.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    /// <summary>Runs <paramref name="pass"/> for <paramref name="warmSeconds"/> (the JIT reaches its final tier), then
    /// <paramref name="reps"/> runs of <paramref name="runSeconds"/> wall time each; the least CPU seconds per pass.</summary>
    public static double BestCpuSecondsPerPass(Action pass, int reps, double warmSeconds, double runSeconds)
    {
        var warm = Stopwatch.StartNew();
        while (warm.Elapsed.TotalSeconds < warmSeconds) pass();
        var process = Process.GetCurrentProcess();
        double best = double.MaxValue;
        for (int run = 0; run < reps; run++)
        {
            int passes = 0;
            process.Refresh();
            var cpu = process.TotalProcessorTime;
            var wall = Stopwatch.StartNew();
            while (wall.Elapsed.TotalSeconds < runSeconds) { pass(); passes++; }
            process.Refresh();
            best = System.Math.Min(best, (process.TotalProcessorTime - cpu).TotalSeconds / passes);
        }
        return best;
    }
}
