using MicroLm.Cli;
using MicroLm.Generation;

namespace MicroLm.Tests.Reliability;

/// <summary>Issue #18, reproduction 12: a memory-mapped model truncated by another process while in use. Between
/// evaluations the session notices (a clear exception); during one, the CLI's relaunch with
/// DOTNET_legacyCorruptedStateExceptionsPolicy=1 turns the fault into one error line (see MappedFaultGuard and
/// docs/reliability.md for what is and is not promised).</summary>
public sealed class TruncatedFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("microlm-trunc-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private string CopyOfDefaultModel()
    {
        string path = Path.Combine(_dir, "model.gguf");
        File.WriteAllBytes(path, ModelSource.DefaultModel());
        return path;
    }

    [Fact]
    public void A_file_truncated_between_evaluations_is_a_clear_error()
    {
        string path = CopyOfDefaultModel();
        using var model = Model.Load(path);
        using var session = model.CreateSession(contextLength: 32);
        session.Evaluate([1, 2, 3]);
        using (var f = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete)) f.SetLength(1000);
        var e = Assert.Throws<MicroLmException>(() => session.Evaluate([4]));
        Assert.Contains("was truncated while in use", e.Message, StringComparison.Ordinal);
        Assert.Contains("--no-mmap", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_rewritten_in_place_between_evaluations_is_a_clear_error()
    {
        string path = CopyOfDefaultModel();
        using var model = Model.Load(path);
        using var session = model.CreateSession(contextLength: 32);
        session.Evaluate([1, 2, 3]);
        File.SetLastWriteTimeUtc(path, File.GetLastWriteTimeUtc(path).AddSeconds(5)); // as `cp other.gguf model.gguf` leaves it
        var e = Assert.Throws<MicroLmException>(() => session.Evaluate([4]));
        Assert.Contains("was rewritten while in use", e.Message, StringComparison.Ordinal);
    }

    /// <summary>Generate checks when it evaluates its prompt, and before a token whose consumer held the stream for
    /// <see cref="Session.PauseBeforeFileCheck"/> or longer (tokens decoded back to back skip the two fstat calls).</summary>
    [Fact]
    public void A_generation_checks_its_file_at_the_prompt_and_after_its_consumer_paused()
    {
        string path = CopyOfDefaultModel();
        using var model = Model.Load(path);
        using var session = model.CreateSession(contextLength: 64);
        var options = new GenerationOptions { MaxTokens = 8, StopAtEndOfSequence = false };
        session.Evaluate([1, 2, 3]);
        File.SetLastWriteTimeUtc(path, File.GetLastWriteTimeUtc(path).AddSeconds(5));
        var e = Assert.Throws<MicroLmException>(() => session.GenerateText("Once", options));
        Assert.Contains("was rewritten while in use", e.Message, StringComparison.Ordinal);

        using var again = Model.Load(path);
        using var fresh = again.CreateSession(contextLength: 64);
        using var tokens = fresh.Generate("Once", options).GetEnumerator();
        Assert.True(tokens.MoveNext());
        File.SetLastWriteTimeUtc(path, File.GetLastWriteTimeUtc(path).AddSeconds(5));
        Thread.Sleep(Session.PauseBeforeFileCheck * 20);
        e = Assert.Throws<MicroLmException>(() => tokens.MoveNext());
        Assert.Contains("was rewritten while in use", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_model_loaded_from_bytes_does_not_care_about_its_file()
    {
        string path = CopyOfDefaultModel();
        using var model = Model.Load(File.ReadAllBytes(path));
        using var session = model.CreateSession(contextLength: 32);
        session.Evaluate([1, 2, 3]);
        File.Delete(path);
        session.Evaluate([4]);
    }

    /// <summary>A part that throws on a worker thread is an exception of the job on the caller (it used to end the
    /// process), after every part has ended, and the team goes on working.</summary>
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void A_failing_part_is_rethrown_to_the_caller(int failingPart)
    {
        using var team = new ThreadTeam(2);
        if (team.Threads < 2) return; // one processor: parts run on the caller, where exceptions always propagated
        var done = new int[2];
        var e = Assert.Throws<InvalidDataException>(() => team.Run((part, _) =>
        {
            if (part == failingPart) throw new InvalidDataException("part " + part);
            Thread.Sleep(50);
            Interlocked.Increment(ref done[part]);
        }));
        Assert.Equal("part " + failingPart, e.Message);
        Assert.Equal(1, done[1 - failingPart]); // the other part had finished before Run returned
        int sum = 0;
        team.Run((part, _) => Interlocked.Add(ref sum, part + 1));
        Assert.Equal(3, sum);
    }
}
