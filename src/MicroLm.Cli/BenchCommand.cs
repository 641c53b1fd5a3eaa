using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using MicroLm.Generation;
using MicroLm.Models;

namespace MicroLm.Cli;

/// <summary>`microlm bench`: llama-bench's pp (prompt processing: a p-token prompt as one batch into a
/// fresh session) and tg (text generation: n tokens one at a time) tests, in tok/s, mean ± sd over r
/// repetitions after a warm-up, plus load time and peak working set.</summary>
public static class BenchCommand
{
    public static readonly CommandSpec Spec = new()
    {
        Name = "bench",
        Synopsis = "-m FILE [-t 1,2] [-p 128] [-n 128] [-r 5] [--all-logits]",
        Summary = "Measures prompt processing (pp) and text generation (tg) speed as llama-bench does.",
        Flags = [.. CommonFlags.Model,
            Flag.IntList("-t|--threads", "N,N", "thread counts to measure (default: the processor count)", min: 1),
            Flag.Int("-p|--n-prompt", "N", "prompt tokens for pp (default 128)", min: 0, max: 1 << 16),
            Flag.Int("-n|--n-gen", "N", "generated tokens for tg (default 128)", min: 0, max: 1 << 16),
            Flag.Int("-r|--repetitions", "N", "repetitions of each test (default 5)", min: 1, max: 1000),
            Flag.Switch("--all-logits", "pp computes every position's logits"), .. CacheTypeFlags.Flags],
        Run = Run,
        ContractExample = ["-m", "$MODEL", "-t", "1", "-p", "4", "-n", "2", "-r", "1"],
    };

    public static int Run(Options o, TextWriter stdout, TextWriter stderr)
    {
        string path = o.Require("FILE", "-m", "--model");
        var threads = o.IntList([Environment.ProcessorCount], "-t", "--threads");
        int p = o.Int(128, "-p", "--n-prompt"), n = o.Int(128, "-n", "--n-gen"), reps = o.Int(5, "-r", "--repetitions");
        if (p + n == 0) throw new UsageException("bench needs -p > 0 or -n > 0");

        var load = Stopwatch.StartNew();
        using var model = Commands.LoadModel(o);
        double loadMs = load.Elapsed.TotalMilliseconds;
        var c = model.Config;

        string name = Path.GetFileName(path);
        string size = string.Create(CultureInfo.InvariantCulture, $"{model.File.Tensors.Sum(t => t.ByteSize) / 1048576.0:F2} MiB");
        string parameters = string.Create(CultureInfo.InvariantCulture, $"{model.File.ParameterCount / 1e6:F2} M");
        stdout.WriteLine("| model | size | params | threads | test | t/s |");
        stdout.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: |");
        foreach (int t in threads)
        {
            using var session = CacheTypeFlags.CreateSession(model, o, p + n, t, System.Math.Max(p, 1));
            var bench = new SessionBench(session) { AllLogits = o.Has("--all-logits") };
            var prompt = BenchTokens.Prompt(p, c.VocabSize, model.Tokenizer.BosId);
            var gen = BenchTokens.Generation(n, c.VocabSize, model.Tokenizer.BosId);
            BenchTiming.WarmUp(() =>
            {
                if (p > 0) bench.Prompt(prompt);
                if (n > 0) bench.Generate(gen.AsSpan(0, System.Math.Min(n, 16)));
            });
            if (p > 0) Row($"pp{p}", BenchTiming.Repeat(reps, () => p / bench.Prompt(prompt)));
            if (n > 0) Row($"tg{n}", BenchTiming.Repeat(reps, () => n / bench.Generate(gen)));
            void Row(string test, Stats s) => stdout.WriteLine($"| {name} | {size} | {parameters} | {t} | {test} | {s} |");
        }
        stdout.WriteLine();
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"load: {loadMs:F1} ms"));
        if (!OperatingSystem.IsBrowser())
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"peak working set: {Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0:F1} MiB"));
        stdout.WriteLine($"runtime: {RuntimeInformation.FrameworkDescription}, {RuntimeInformation.ProcessArchitecture}, " +
                         $"{BenchTiming.VectorDescription()}, {BenchTiming.JitDescription()}; " +
                         (o.Has("--all-logits") ? "pp computes every position's logits" : "pp computes the last token's logits only (as llama.cpp)"));
        return 0;
    }
}

/// <summary>Times one session the way llama-bench times llama.cpp: each run starts from an empty cache.</summary>
public sealed class SessionBench(Session session)
{
    private readonly int[] _one = new int[1];

    /// <summary>pp computes every position's logits (Evaluate's default) instead of the last one's.</summary>
    public bool AllLogits { get; init; }

    /// <summary>Seconds to evaluate the prompt as one batch, logits for the last token only (as llama.cpp does)
    /// unless <see cref="AllLogits"/>.</summary>
    public double Prompt(int[] prompt)
    {
        session.Reset();
        long start = Stopwatch.GetTimestamp();
        session.Evaluate(prompt, prompt.Length, lastLogitsOnly: !AllLogits);
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    /// <summary>Seconds to evaluate the tokens one at a time (each with its logits), from position 0.</summary>
    public double Generate(ReadOnlySpan<int> tokens)
    {
        session.Reset();
        long start = Stopwatch.GetTimestamp();
        foreach (int t in tokens)
        {
            _one[0] = t;
            session.EvaluateNext(_one, onLogits: null); // as the generation loop evaluates each token
        }
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }
}

/// <summary>The token ids llama-bench feeds: BOS, then seeded pseudo-random ids (the ids barely matter
/// for speed; fixed so every run and both engines see the same ones).</summary>
public static class BenchTokens
{
    public static int[] Prompt(int count, int vocab, int bos) => Make(count, vocab, bos, 0x9E3779B97F4A7C15UL);
    public static int[] Generation(int count, int vocab, int bos) => Make(count, vocab, bos, 0xD1B54A32D192ED03UL);

    private static int[] Make(int count, int vocab, int bos, ulong state)
    {
        var ids = new int[count];
        for (int i = 0; i < count; i++)
        {
            state = state * 6364136223846793005UL + 1442695040888963407UL;
            ids[i] = (int)((state >> 33) % (ulong)System.Math.Max(1, vocab - 3)) + 3; // skip unk/bos/eos
        }
        if (count > 0 && bos >= 0) ids[0] = bos;
        return ids;
    }
}

/// <summary>Mean ± sample standard deviation of per-repetition rates, printed as llama-bench prints them.</summary>
public readonly record struct Stats(double Mean, double Sd, int Count)
{
    public static Stats Of(IReadOnlyList<double> xs)
    {
        double mean = xs.Average();
        double sd = xs.Count > 1 ? System.Math.Sqrt(xs.Sum(x => (x - mean) * (x - mean)) / (xs.Count - 1)) : 0;
        return new Stats(mean, sd, xs.Count);
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Mean:F2} ± {Sd:F2}");
}

public static class BenchTiming
{
    /// <summary>Runs <paramref name="round"/> (repeated to fill at least 250 ms) until a whole such round
    /// JIT-compiles no new method body: with tiered compilation (and dynamic PGO) on, as shipped, the hot
    /// methods start at tier 0, are instrumented, and are recompiled at tier 1 in the background after
    /// ~30 calls and a 100 ms quiet period; a 250 ms round in which nothing is compiled means tiering is done.
    /// At most 12 rounds. Returns the number of rounds.</summary>
    public static int WarmUp(Action round, int maxRounds = 12)
    {
        for (int r = 1; ; r++)
        {
            long before = System.Runtime.JitInfo.GetCompiledMethodCount();
            long start = Stopwatch.GetTimestamp();
            do round(); while (Stopwatch.GetElapsedTime(start).TotalMilliseconds < 250);
            if (System.Runtime.JitInfo.GetCompiledMethodCount() == before || r >= maxRounds) return r;
        }
    }

    /// <summary>Mean ± sd of <paramref name="reps"/> calls of a rate.</summary>
    public static Stats Repeat(int reps, Func<double> rate)
    {
        var xs = new double[reps];
        for (int i = 0; i < reps; i++) xs[i] = rate();
        return Stats.Of(xs);
    }

    /// <summary>The vector width the kernels run at, and AVX-VNNI where the quantized integer steps take it: DOTNET_EnableAVX512=0
    /// leaves it on, so a 256-bit run on a CPU that has it is not what an AVX2-only CPU runs (DOTNET_EnableAVXVNNI=0 is).</summary>
    public static string VectorDescription()
    {
        string width = System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated ? "Vector512"
            : System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated ? "Vector256"
            : System.Runtime.Intrinsics.Vector128.IsHardwareAccelerated ? "Vector128" : "scalar";
        return System.Runtime.Intrinsics.X86.AvxVnni.IsSupported ? width + " + AVX-VNNI" : width;
    }

    /// <summary>The JIT settings that matter for speed, as the environment sets them.</summary>
    public static string JitDescription()
    {
        string Env(string name) => Environment.GetEnvironmentVariable("DOTNET_" + name) ?? "default";
        return $"TieredCompilation={Env("TieredCompilation")}, TieredPGO={Env("TieredPGO")}, ReadyToRun={Env("ReadyToRun")}";
    }
}
