using System.Diagnostics;
using MicroLm.Generation;
using MicroLm.Models;
using MicroLm.Sampling;

namespace MicroLm.Tests.Reliability;

/// <summary>Threads: bounded by the processors, the same bits for any count, several sessions at once on
/// one shared model (issue #18, items 5 and 14), and a session used by two threads at once is an error.</summary>
public class ThreadingTests
{
    private static string ModelPath => SharedData.Path("models", "gguf", "stories260K-F32.gguf");

    private static int[] Greedy(Model model, int threads, int tokens)
    {
        using var session = model.CreateSession(128, threads);
        var g = new Generator(session, SamplingOptions.Greedy) { StopAtEndOfSequence = false };
        return [.. g.Generate(model.Tokenizer.Encode("Once upon a time", true), tokens).Select(t => t.Id)];
    }

    [SharedTheory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(7)]
    [InlineData(64)]
    [InlineData(1000)]
    public void Any_thread_count_gives_the_same_tokens_and_never_more_threads_than_processors(int threads)
    {
        using var model = Model.Load(ModelPath);
        using (var team = new ThreadTeam(threads))
        {
            Assert.InRange(team.Threads, 1, Environment.ProcessorCount);
            Assert.Equal(System.Math.Min(threads, ThreadTeam.MaxParts), team.Count);
            // Every part runs exactly once.
            var seen = new int[team.Count];
            team.Run((part, parts) => { Assert.Equal(team.Count, parts); Interlocked.Increment(ref seen[part]); });
            Assert.All(seen, s => Assert.Equal(1, s));
        }
        Assert.Equal(Greedy(model, 1, 24), Greedy(model, threads, 24));
    }

    [SharedFact]
    public async Task Four_sessions_with_two_threads_each_on_one_model_finish_with_the_same_tokens()
    {
        using var model = Model.Load(ModelPath);
        var expected = Greedy(model, 1, 48);
        var sw = Stopwatch.StartNew();
        var results = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => Greedy(model, 2, 48))));
        foreach (var r in results) Assert.Equal(expected, r);
        // Before the fix this took minutes (spinning workers starving each other); one thread each takes
        // well under a second. The bound is loose so a busy machine does not fail it.
        Assert.True(sw.Elapsed.TotalSeconds < 60, $"took {sw.Elapsed.TotalSeconds:F1} s");
    }

    [SharedFact]
    public void A_session_used_by_two_threads_at_once_is_a_clear_error()
    {
        using var model = Model.Load(ModelPath);
        using var session = model.CreateSession(64);
        Exception? second = null;
        var prompt = model.Tokenizer.Encode("Once upon a time", true).ToArray();
        // While the first evaluation is inside its logits callback, another thread tries the same session.
        session.Evaluate(prompt, onLogits: (pos, _, _) =>
        {
            if (pos != 0) return;
            var t = new Thread(() =>
            {
                try { session.Evaluate([5]); }
                catch (Exception e) { second = e; }
            });
            t.Start();
            t.Join();
        });
        var error = Assert.IsType<InvalidOperationException>(second);
        Assert.Contains("one thread at a time", error.Message, StringComparison.Ordinal);
        // The session itself is unharmed and usable afterwards.
        Assert.Equal(prompt.Length, session.Position);
        session.Evaluate([5]);
    }
}
