using MicroLm.Fuzz;

namespace MicroLm.Tests.Reliability;

/// <summary>Every seed and every past fuzzing finding (tests/fuzz/corpus and tests/fuzz/regressions) through its
/// fuzz target in-process: each input is accepted or rejected with a documented exception, never anything else.
/// scripts/fuzz runs the same targets under AFL++.</summary>
public class FuzzCorpusTests
{
    private static string FuzzDir()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
        {
            string c = Path.Combine(d.FullName, "tests", "fuzz");
            if (Directory.Exists(Path.Combine(c, "corpus"))) return c;
        }
        throw new DirectoryNotFoundException("tests/fuzz not found above " + AppContext.BaseDirectory);
    }

    public static TheoryData<string> Targets() => [.. FuzzTargets.Names];

    [SharedTheory, MemberData(nameof(Targets))]
    public void Seeds_and_past_findings_are_accepted_or_rejected_cleanly(string target)
    {
        var run = FuzzTargets.Get(target, SharedData.Root);
        var files = new List<string>();
        foreach (var kind in new[] { "corpus", "regressions" })
        {
            string dir = Path.Combine(FuzzDir(), kind, target);
            if (Directory.Exists(dir)) files.AddRange(Directory.GetFiles(dir).Order());
        }
        Assert.NotEmpty(files);
        int accepted = 0;
        foreach (var f in files)
        {
            try { run(File.ReadAllBytes(f)); accepted++; }
            catch (Exception e) when (FuzzTargets.IsExpected(e)) { Assert.DoesNotContain('\n', e.Message); }
            catch (Exception e) { throw new Xunit.Sdk.XunitException($"{Path.GetFileName(f)}: {e}"); }
        }
        // The seeds are valid inputs: most must run all the way through.
        Assert.True(accepted > 0, $"no {target} input ran through");
    }
}
