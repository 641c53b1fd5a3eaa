using System.Diagnostics;
using System.Runtime.InteropServices;

namespace MicroLm.Tests;

/// <summary>CPU time of the calling thread, for tests that bound a pathological slowness (a parse or a load
/// that must not take seconds): wall-clock bounds failed when other work shared the machine's cores, the
/// thread's own CPU time does not grow while it waits for a core. Linux: clock_gettime(CLOCK_THREAD_CPUTIME_ID);
/// elsewhere the process's CPU time (an upper bound: other threads' time included).</summary>
internal static class ThreadCpuTime
{
    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec { public long Seconds; public long Nanoseconds; }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out Timespec time);

    private const int ClockThreadCpuTimeId = 3;

    public static TimeSpan Now()
    {
        if (OperatingSystem.IsLinux() && ClockGetTime(ClockThreadCpuTimeId, out var t) == 0)
            return TimeSpan.FromTicks(t.Seconds * TimeSpan.TicksPerSecond + t.Nanoseconds / 100);
        return Process.GetCurrentProcess().TotalProcessorTime;
    }

    /// <summary>CPU time the calling thread spends in <paramref name="action"/>.</summary>
    public static TimeSpan Of(Action action)
    {
        var start = Now();
        action();
        return Now() - start;
    }
}
