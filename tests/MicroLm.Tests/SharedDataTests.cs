namespace MicroLm.Tests;

/// <summary>The check that keeps a test reading ../shared marked as such (<see cref="SharedData.RequireSharedTest"/>):
/// a plain Fact asking for the folder fails, directly, from a lambda and after an await; a SharedFact may ask.</summary>
public class SharedDataTests
{
    [Fact]
    public void A_plain_fact_that_reads_the_shared_folder_fails()
    {
        var e = Assert.Throws<InvalidOperationException>(() => SharedData.Path("models"));
        Assert.Contains(nameof(A_plain_fact_that_reads_the_shared_folder_fails), e.Message, StringComparison.Ordinal);
        Assert.Contains("[SharedFact]", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_async_fact_that_reads_the_shared_folder_after_an_await_fails()
    {
        await Task.Yield();
        Assert.Throws<InvalidOperationException>(Read);
        string Read() => SharedData.Root;
    }

    [Theory]
    [InlineData("models")]
    public void A_plain_theory_that_reads_the_shared_folder_fails(string folder) =>
        Assert.Throws<InvalidOperationException>(() => SharedData.Path(folder));

    [SharedFact]
    public void A_shared_fact_may_read_it() => Assert.True(Directory.Exists(SharedData.Path("models")));
}
