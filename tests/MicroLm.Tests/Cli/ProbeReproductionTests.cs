using System.Diagnostics;
using MicroLm.Cli;
using static MicroLm.Tests.Cli.CliRun;

namespace MicroLm.Tests.Cli;

/// <summary>Issue #18's reproductions, one test each (numbers as in the table), run in-process.</summary>
public class ProbeReproductionTests
{
    [SharedFact] // 1
    public void Empty_paths_are_one_line_errors()
    {
        AssertError(Run("run", "-m", "", "-p", "Once"), "-m needs a non-empty FILE");
        AssertError(Run("run", "-m", ModelPath, "-f", ""), "-f needs a non-empty FILE");
        AssertError(Run("convert", "llama2c", Llama2c, "--tokenizer", Tok512, "-o", ""), "-o needs a non-empty OUT.gguf");
        AssertError(Run("inspect", ""), "no such file");
    }

    [SharedFact] // 2
    public void A_huge_repeat_window_costs_no_memory()
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        var r = Run("run", "-m", ModelPath, "-p", "Once", "-n", "4", "--repeat-last-n", "2147483647", "--repeat-penalty", "1.1");
        Assert.True(r.Code == 0, r.Err);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 64 << 20, "allocated more than 64 MiB");
        Assert.Equal(0, Run("run", "-m", ModelPath, "-p", "Once", "-n", "4", "--repeat-last-n", "-1", "--repeat-penalty", "1.1").Code);
    }

    [SharedTheory] // 3, 4
    [InlineData("100000000")]
    [InlineData("2147483647")]
    [InlineData("1000000")]
    public void A_huge_batch_is_capped_by_the_context(string batch)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        var r = Run("run", "-m", ModelPath, "-p", "Once upon a time", "-n", "4", "--temp", "0", "--batch", batch);
        Assert.True(r.Code == 0, r.Err);
        // Weights are mapped; KV cache (512 positions) and O(min(batch, context)) scratch and logits are a few MB.
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 64 << 20, "allocated more than 64 MiB");
        Assert.Equal(Run("run", "-m", ModelPath, "-p", "Once upon a time", "-n", "4", "--temp", "0").Out, r.Out);
    }

    [SharedFact] // 5
    public void A_huge_thread_count_is_capped_and_finishes_with_the_same_bits()
    {
        var sw = Stopwatch.StartNew();
        var many = Run("verify", "-m", ModelPath, "-p", "Once upon a time", "-n", "4", "--temp", "0", "-t", "1000");
        Assert.True(many.Code == 0, many.Err);
        Assert.True(sw.Elapsed.TotalSeconds < 30, $"took {sw.Elapsed.TotalSeconds:F1} s");
        Assert.Equal(Run("verify", "-m", ModelPath, "-p", "Once upon a time", "-n", "4", "--temp", "0", "-t", "1").Out, many.Out);
        using var model = MicroLm.Model.Load(ModelPath);
        using var session = model.CreateSession(64, threads: 1000);
        Assert.True(session.Team.Threads <= Environment.ProcessorCount);
        Assert.Equal(MicroLm.Generation.ThreadTeam.MaxParts, session.Team.Count);
    }

    [SharedFact] // 6
    public void Unknown_flags_and_stray_words_are_rejected()
    {
        Assert.Contains("did you mean --temp?", AssertError(Run("run", "-m", ModelPath, "-p", "Once", "-n", "4", "--tmp", "0"), "unknown option --tmp"));
        AssertError(Run("run", "-m", ModelPath, "-p", "Once", "upon", "-n", "4"), "'upon'");
    }

    [SharedFact] // 7
    public void A_switch_does_not_swallow_the_next_flag()
    {
        var r = Run("verify", "-m", ModelPath, "-p", "Once", "--ignore-eos", "-n", "3");
        Assert.True(r.Code == 0, r.Err);
        // BOS + "Once" = 2 prompt positions, 3 generated and evaluated, then the final hash.
        Assert.Equal(2 + 3 + 1, r.Out.TrimEnd('\n').Split('\n').Length);
    }

    [SharedTheory] // 8
    [InlineData("--temp", "NaN")]
    [InlineData("--top-p", "NaN")]
    [InlineData("--min-p", "NaN")]
    [InlineData("--temp", "-Infinity")]
    [InlineData("--repeat-penalty", "NaN")]
    public void NaN_sampling_settings_are_refused(string flag, string value)
    {
        AssertError(Run("run", "-m", ModelPath, "-p", "Once", "-n", "8", flag, value), $"{flag} expects a finite number");
        // The library refuses them too.
        var o = flag switch
        {
            "--temp" => new MicroLm.SamplingOptions { Temperature = float.Parse(value, System.Globalization.CultureInfo.InvariantCulture) },
            "--top-p" => new MicroLm.SamplingOptions { TopP = float.NaN },
            "--min-p" => new MicroLm.SamplingOptions { MinP = float.NaN },
            _ => new MicroLm.SamplingOptions { RepeatPenalty = float.NaN },
        };
        Assert.Throws<MicroLmException>(() => new MicroLm.Sampling.Sampler(o, 10));
    }

    [SharedFact] // minor: a sampling error is the only output
    public void A_sampling_error_prints_nothing_before_it()
    {
        AssertError(Run("run", "-m", ModelPath, "-p", "Once upon", "-n", "4", "--top-p", "0"), "top-p must be in (0, 1]");
    }

    [SharedFact] // minor: a folder as -m
    public void A_folder_as_the_model_says_so()
    {
        AssertError(Run("run", "-m", SharedData.Path("models"), "-p", "Once"), "is a folder, not a model file");
        AssertError(Run("inspect", SharedData.Path("models")), "is a folder");
    }

    [SharedFact] // minor: past the trained context
    public void Running_past_the_trained_context_warns()
    {
        var r = Run("run", "-m", ModelPath, "-p", "Once", "-n", "200", "--temp", "0", "--ignore-eos");
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("microlm: warning: this run uses 202 positions but the model was trained on 128", r.Err, StringComparison.Ordinal);
        var within = Run("run", "-m", ModelPath, "-p", "Once", "-n", "4");
        Assert.DoesNotContain("warning", within.Err, StringComparison.Ordinal);
    }
}
