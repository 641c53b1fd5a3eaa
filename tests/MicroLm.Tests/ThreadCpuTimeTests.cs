using System.Diagnostics;

namespace MicroLm.Tests;

public class ThreadCpuTimeTests
{
    [Fact]
    public void CountsWorkButNotWaiting()
    {
        // Sleeping costs (almost) no CPU time; spinning accrues it (within a generous wall-clock limit).
        Assert.True(ThreadCpuTime.Of(() => Thread.Sleep(300)) < TimeSpan.FromMilliseconds(100));
        var start = ThreadCpuTime.Now();
        var wall = Stopwatch.StartNew();
        long spins = 0;
        while (ThreadCpuTime.Now() - start < TimeSpan.FromMilliseconds(50) && wall.Elapsed < TimeSpan.FromSeconds(30)) spins++;
        Assert.True(wall.Elapsed < TimeSpan.FromSeconds(30), "thread CPU time did not advance while spinning");
        Assert.True(spins > 0);
    }
}
