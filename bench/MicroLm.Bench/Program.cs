using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using MicroLm.Bench;
using MicroLm.Cli;
using MicroLm.Models;
using MicroLm.Tensors;

// MicroLm vs llama.cpp on synthetic stories15M/110M-shaped models. See docs/performance.md.
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
try
{
    if (args.Length > 0 && args[0] == "fixed") return FixedReport.Run(args[1..]);
    var a = BenchArgs.Parse(args);
    if (a.Help) { Console.WriteLine(BenchArgs.Usage); return 0; }
    // --isa applies to every mode that times MicroLm (the JIT's level is fixed at start-up: a child run).
    if ((a.Profile || a.DeterminismCost || a.PrefillKernels || a.DecodeKernels) && Isa.RunInChildIfNeeded(a.Isa, args) is int childExit) return childExit;
    if (a.Profile) { DecodeProfile.Run(a, Console.Out); return 0; }
    if (a.PrefillKernels) { PrefillKernels.Run(a, Console.Out); return 0; }
    if (a.DecodeKernels) { DecodeKernels.Run(a, Console.Out); return 0; }
    if (a.DeterminismCost) { DeterminismCost.Run(a, Console.Out); return 0; }
    if (a.WriteModels)
    {
        foreach (var shape in a.Shapes)
            foreach (var format in a.Formats) Console.WriteLine(BenchModels.Ensure(shape, format, Console.Error));
        return 0;
    }
    if (Isa.RunInChildIfNeeded(a.Isa, args) is int exitCode) return exitCode;
    return Comparison.Run(a);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"microlm-bench: {e.Message}\n{BenchArgs.Usage}");
    return 2;
}

namespace MicroLm.Bench
{
    internal sealed record Shape(string Name, int Dim, int Hidden, int Layers, int Heads, string Family = "llama")
    {
        public const int Vocab = 32000;
        public static readonly Shape[] All =
        [
            new("15M", 288, 768, 6, 6),
            new("110M", 768, 2048, 12, 12),
        ];
        /// <summary>Shapes run only when named: Falcon-H1-Tiny-90M (attention + Mamba2, see SyntheticFalconH1.Tiny90M), Pythia-14M and -70M (GPT-NeoX).</summary>
        public static readonly Shape[] Named =
        [
            new("H1-90M", 512, 768, 24, 8, Family: "falcon-h1"),
            new("P14M", 128, 512, 6, 4, Family: "gptneox"),
            new("P70M", 512, 2048, 6, 8, Family: "gptneox"),
        ];
        public static Shape Find(string name) =>
            All.Concat(Named).FirstOrDefault(s => s.Name.Equals(name, StringComparison.OrdinalIgnoreCase))
            ?? throw new ArgumentException($"unknown shape '{name}' (known: {string.Join(", ", All.Concat(Named).Select(s => s.Name))})");
    }

    internal sealed class BenchArgs
    {
        public const string Usage = """
            usage: dotnet run -c Release --project bench/MicroLm.Bench -- [--shapes 15M,110M,H1-90M,P14M,P70M] [--formats F32,F16,Q8_0,Q4_0]
                   [--threads 1,2] [--reps N] [-p 128] [-n 128] [--isa avx2|avx512|native] [--load mapped|memory] [--write-docs] [--profile] [--determinism-cost] [--prefill-kernels] [--decode-kernels]
              --isa         the instruction-set level of both engines: MicroLm's JIT (avx2 sets DOTNET_EnableAVX512=0 in a
                            child run) and LLamaSharp's matching llama.cpp build; native (default) is the best this CPU runs
              --load        how both engines hold the weights: mapped (default; MicroLm's Model.Load(path) and llama.cpp's
                            own default, LLAMA_LOAD_MODE_MMAP) or memory (both read the file into process memory: MicroLm's
                            Model.Load of the file's stream, as `microlm --no-mmap`, and llama.cpp's load mode none, LLamaSharp's default)
              --settle-ms   idle time before each timed run (default 100; llama.cpp's workers spin after a run)
              --write-docs  put the table into docs/performance.md between <!-- bench:begin --> and <!-- bench:end -->
                            (--isa avx2 / avx512: the bench-avx2 / bench-avx512 markers)
              --profile     where decode time goes (stories15M shape, F32 and Q8_0, 1 thread; --formats/--shapes apply)
              --prefill-kernels  one layer's prefill matmuls of --shapes × --formats with -p tokens, 1 thread, in
                            process CPU time (min of --reps runs; default 5 here): GMAC/s, for comparing kernels on a busy machine
              --decode-kernels  one decode step's matmuls (every layer and the classifier of the bench model of --shapes ×
                            --formats), 1 token, 1 thread, in process CPU time (min of --reps runs; default 5 here)
              --write-models  only write the synthetic models of --shapes × --formats (if missing) and print their paths
              --determinism-cost  the runtime's kernels against non-deterministic ones (FMA, Vector512.Sum, float exp),
                            stories15M shape, F32 and Q8_0, 1 thread, median of --reps (default 7 here); see docs/determinism.md
            """;
        public Shape[] Shapes = [.. Shape.All];
        public GgmlType[] Formats = [GgmlType.F32, GgmlType.F16, GgmlType.Q8_0, GgmlType.Q4_0];
        public int[] Threads = [1, 2];
        public int Reps = 3, Prompt = 128, Gen = 128;
        /// <summary>Idle milliseconds before each timed run (0 turns it off, to see what it changes).</summary>
        public int SettleMs = 100;
        public bool WriteDocs, Profile, DeterminismCost, WriteModels, PrefillKernels, DecodeKernels, Help;
        public IsaLevel Isa = IsaLevel.Native;
        /// <summary>Both engines map the file (the default of each) or both read it into memory. The two are not the same
        /// speed for a token that streams its weights: llama.cpp's 110M F32 decode ran ~40 tok/s mapped and ~60 in memory
        /// (docs/performance.md, "Mapped or in memory").</summary>
        public bool InMemory;
        private bool _formatsGiven, _shapesGiven, _repsGiven;

        public static BenchArgs Parse(string[] args)
        {
            var a = new BenchArgs();
            for (int i = 0; i < args.Length; i++)
            {
                string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
                string[] List() => Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                int Int() => int.TryParse(Value(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v > 0 ? v
                    : throw new ArgumentException($"{args[i - 1]} expects a positive integer");
                switch (args[i])
                {
                    case "--shapes": a.Shapes = List().Select(Shape.Find).ToArray(); a._shapesGiven = true; break;
                    case "--formats": a.Formats = List().Select(ParseType).ToArray(); a._formatsGiven = true; break;
                    case "--threads" or "-t": a.Threads = List().Select(s => int.TryParse(s, out int t) && t > 0 ? t : throw new ArgumentException($"bad thread count '{s}'")).ToArray(); break;
                    case "--reps" or "-r": a.Reps = Int(); a._repsGiven = true; break;
                    case "-p": a.Prompt = Int(); break;
                    case "-n": a.Gen = Int(); break;
                    case "--isa": a.Isa = MicroLm.Bench.Isa.Parse(Value()); break;
                    case "--load": a.InMemory = Value() switch
                    {
                        "mapped" => false,
                        "memory" => true,
                        var v => throw new ArgumentException($"--load expects mapped or memory, not '{v}'"),
                    }; break;
                    case "--write-docs": a.WriteDocs = true; break;
                    case "--settle-ms": a.SettleMs = int.TryParse(Value(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int ms) && ms >= 0 ? ms
                        : throw new ArgumentException("--settle-ms expects a non-negative integer"); break;
                    case "--profile": a.Profile = true; break;
                    case "--determinism-cost": a.DeterminismCost = true; break;
                    case "--write-models": a.WriteModels = true; break;
                    case "--prefill-kernels": a.PrefillKernels = true; break;
                    case "--decode-kernels": a.DecodeKernels = true; break;
                    case "-h" or "--help": a.Help = true; break;
                    default: throw new ArgumentException($"unknown option '{args[i]}'");
                }
            }
            if (a.Profile)
            {
                if (!a._shapesGiven) a.Shapes = [Shape.All[0]];
                if (!a._formatsGiven) a.Formats = [GgmlType.F32, GgmlType.Q8_0];
            }
            if (a.DeterminismCost && !a._repsGiven) a.Reps = 7;
            if (a.PrefillKernels || a.DecodeKernels)
            {
                if (!a._formatsGiven) a.Formats = [GgmlType.Q8_0, GgmlType.Q4_0];
                if (!a._repsGiven) a.Reps = 5;
            }
            return a;
        }

        private static GgmlType ParseType(string s) => s.ToUpperInvariant() switch
        {
            "F32" => GgmlType.F32,
            "F16" => GgmlType.F16,
            "Q8_0" => GgmlType.Q8_0,
            "Q4_0" => GgmlType.Q4_0,
            _ => throw new ArgumentException($"unknown format '{s}' (F32, F16, Q8_0, Q4_0)"),
        };
    }

    /// <summary>The interleaved MicroLm / llama.cpp comparison table.</summary>
    internal static class Comparison
    {
        /// <summary>The file read into memory, as `microlm --no-mmap` reads it (Model.Load of a stream).</summary>
        private static Model LoadIntoMemory(string path)
        {
            using var stream = File.OpenRead(path);
            return Model.Load(stream);
        }

        public static string LoadDescription(BenchArgs a) => a.InMemory
            ? "read into memory by both engines (--load memory)"
            : "memory-mapped by both engines (--load mapped, each engine's default)";

        public static int Run(BenchArgs a)
        {
            var started = DateTime.UtcNow;
            LlamaCppBench.Configure(a.Isa);
            Console.Error.WriteLine($"MicroLm: {BenchTiming.VectorDescription()}; llama.cpp: {LlamaCppBench.Version()}; weights {LoadDescription(a)}");
            var bandwidths = new List<string>();
            var rows = new List<string>
            {
                "| shape | format | threads | test | microlm tok/s | llama.cpp tok/s | ratio | memory bound tok/s | microlm / bound | llama.cpp / bound |",
                "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            };
            foreach (var r in rows) Console.WriteLine(r);
            int ctx = a.Prompt + a.Gen;
            foreach (var shape in a.Shapes)
            foreach (var format in a.Formats)
            {
                string path = BenchModels.Ensure(shape, format, Console.Error);
                using var model = a.InMemory ? LoadIntoMemory(path) : Model.Load(path);
                var prompt = BenchTokens.Prompt(a.Prompt, model.Config.VocabSize, model.Tokenizer.BosId);
                var gen = BenchTokens.Generation(a.Gen, model.Config.VocabSize, model.Tokenizer.BosId);
                long weightBytes = MemoryBound.BytesPerToken(model.File);
                double bandwidth = MemoryBound.ReadBandwidth(weightBytes);
                bandwidths.Add($"{shape.Name} {format}: {weightBytes / 1048576.0:F1} MiB at {bandwidth / 1e9:F1} GB/s");
                Console.Error.WriteLine($"  {bandwidths[^1]} (single-thread read bandwidth over a working set of that size)");
                foreach (int threads in a.Threads)
                {
                    using var session = model.CreateSession(contextLength: ctx, threads: threads, maxBatch: a.Prompt);
                    var ours = new SessionBench(session);
                    using var theirs = new LlamaCppBench(path, threads, ctx, a.Prompt, a.InMemory);
                    // Warm-up on a short prompt and a few tokens: the same code paths as the timed runs (a batch,
                    // then single tokens), so the JIT reaches tier 1 without minutes of 110M-sized work.
                    var shortPrompt = prompt[..System.Math.Min(16, prompt.Length)];
                    var shortGen = gen.AsSpan(0, System.Math.Min(4, gen.Length)).ToArray();
                    int rounds = BenchTiming.WarmUp(() => { ours.Prompt(shortPrompt); ours.Generate(shortGen); });
                    // Then one untimed run of each test at full size for both engines (llama-bench's warm-up run): the
                    // first run at a new size touches fresh batch and cache pages, and ours ran 7-15 % slower in it.
                    ours.Prompt(prompt); ours.Generate(gen);
                    theirs.Prompt(prompt); theirs.Generate(gen);
                    Console.Error.WriteLine($"  {shape.Name} {format} t={threads}: warm-up {rounds} round(s)");
                    // The memory bound: decode reads the weights once per token, prefill once per batch of p tokens.
                    Emit($"pp{a.Prompt}", a.Reps, bandwidth * a.Prompt / weightBytes, () => a.Prompt / ours.Prompt(prompt), () => a.Prompt / theirs.Prompt(prompt));
                    Emit($"tg{a.Gen}", a.Reps, bandwidth / weightBytes, () => a.Gen / ours.Generate(gen), () => a.Gen / theirs.Generate(gen));

                    void Emit(string test, int reps, double bound, Func<double> mine, Func<double> other)
                    {
                        var xs = new double[reps];
                        var ys = new double[reps];
                        // Interleaved, so machine noise hits both; each timed run starts on an idle machine (Settle):
                        // llama.cpp's OpenMP workers keep spinning for a while after its run and would otherwise take a
                        // core from the next multi-threaded run of ours.
                        for (int i = 0; i < reps; i++) { Settle(a); xs[i] = mine(); Settle(a); ys[i] = other(); }
                        var (m, o) = (Stats.Of(xs), Stats.Of(ys));
                        Console.Error.WriteLine($"    {shape.Name} {format} t={threads} {test} runs: ours {string.Join(' ', xs.Select(v => v.ToString("F1")))}; llama.cpp {string.Join(' ', ys.Select(v => v.ToString("F1")))}");
                        // The ratio of each back-to-back pair, then their median: this VM's speed drifts by up to a third
                        // over tens of seconds, which a ratio of means lets into the cell and a pair's ratio cancels.
                        double ratio = KernelTiming.Median(xs.Zip(ys, (mine, theirs) => mine / theirs));
                        string row = $"| {shape.Name} | {format} | {threads} | {test} | {m} | {o} | {ratio:F2} | {bound:F0} | {m.Mean / bound:F2} | {o.Mean / bound:F2} |";
                        rows.Add(row);
                        Console.WriteLine(row);
                    }
                }
            }
            var elapsed = DateTime.UtcNow - started;
            static void Settle(BenchArgs a) { if (a.SettleMs > 0) Thread.Sleep(a.SettleMs); }
            Console.Error.WriteLine($"done in {elapsed.TotalSeconds:F0} s");
            if (a.WriteDocs) Docs.Write(rows, a, started, elapsed, bandwidths);
            return 0;
        }
    }

    /// <summary>Synthetic models, cached under artifacts/bench-models/ (written once; atomically, so an
    /// interrupted run leaves no half file).</summary>
    internal static partial class BenchModels
    {
        /// <summary>Falcon-H1-Tiny-90M's shape with random weights (generated 32768-piece vocabulary, untied classifier).</summary>
        private static string EnsureFalconH1(string dir, Shape s, GgmlType format, TextWriter log)
        {
            var options = MicroLm.Synthetic.SyntheticFalconH1.Tiny90M(format);
            string path = Path.Combine(dir, $"falcon-h1-{s.Name}-d{options.Dim}-l{options.Layers}-ssm{options.SsmInner}x{options.SsmState}-v{options.VocabSize}-seed{options.Seed}-{format}.gguf");
            if (File.Exists(path)) return path;
            log.WriteLine($"  writing {Path.GetFileName(path)} ...");
            string tmp = path + ".tmp";
            MicroLm.Synthetic.SyntheticFalconH1.Write(tmp, options);
            File.Move(tmp, path, overwrite: true);
            return path;
        }

        /// <summary>Pythia-14M/70M's shape (GPT-NeoX, parallel residual, 50304-row vocabulary) with random weights.</summary>
        private static string EnsurePythia(string dir, Shape s, GgmlType format, TextWriter log)
        {
            var options = MicroLm.Synthetic.SyntheticGptNeoX.Pythia(s.Name[1..], Repo.Shared("tokenizer-vectors", "ggml-vocab-gpt-neox.gguf"), format, seed: 1);
            string path = Path.Combine(dir, $"gptneox-{s.Name}-d{options.Dim}-f{options.HiddenDim}-l{options.Layers}-h{options.Heads}-seed1-{format}.gguf");
            if (File.Exists(path)) return path;
            log.WriteLine($"  writing {Path.GetFileName(path)} ...");
            string tmp = path + ".tmp";
            MicroLm.Synthetic.SyntheticGptNeoX.Write(tmp, options);
            File.Move(tmp, path, overwrite: true);
            return path;
        }

        public static string Ensure(Shape s, GgmlType format, TextWriter log)
        {
            string dir = Path.Combine(Repo.Root, "artifacts", "bench-models");
            Directory.CreateDirectory(dir);
            if (s.Family == "falcon-h1") return EnsureFalconH1(dir, s, format, log);
            if (s.Family == "gptneox") return EnsurePythia(dir, s, format, log);
            string path = Path.Combine(dir, $"llama-{s.Name}-d{s.Dim}-f{s.Hidden}-l{s.Layers}-h{s.Heads}-v{Shape.Vocab}-tied-seed1-{format}.gguf");
            if (File.Exists(path)) return path;
            log.WriteLine($"  writing {Path.GetFileName(path)} ...");
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var vocab = MicroLm.Synthetic.SyntheticVocabulary.FromLlama2c(Repo.Shared("models", "llama2c", "tokenizer.bin"), Shape.Vocab);
            var options = new MicroLm.Synthetic.SyntheticLlamaOptions
            {
                Dim = s.Dim, HiddenDim = s.Hidden, Layers = s.Layers, Heads = s.Heads, KvHeads = s.Heads,
                ContextLength = 256, Vocabulary = vocab, TiedOutput = true, MatrixType = format, Seed = 1,
            };
            string tmp = path + ".tmp";
            MicroLm.Synthetic.SyntheticLlama.Write(tmp, options);
            File.Move(tmp, path, overwrite: true);
            log.WriteLine($"  wrote {new FileInfo(path).Length / 1048576.0:F1} MiB in {sw.Elapsed.TotalSeconds:F1} s");
            return path;
        }
    }

    internal static class Repo
    {
        /// <summary>The checkout: the first ancestor of the build output (or of the working directory) holding MicroLm.sln.</summary>
        public static string Root => LazyRoot.Value;
        private static readonly Lazy<string> LazyRoot = new(() =>
            Up(AppContext.BaseDirectory, d => File.Exists(Path.Combine(d, "MicroLm.sln")))
            ?? Up(Environment.CurrentDirectory, d => File.Exists(Path.Combine(d, "MicroLm.sln")))
            ?? throw new DirectoryNotFoundException("cannot find MicroLm.sln above " + AppContext.BaseDirectory));

        /// <summary>A path in the shared data folder beside the checkout (&lt;root&gt;/shared/models, as the tests find it).</summary>
        public static string Shared(params string[] parts)
        {
            string? dir = Up(Root, d => Directory.Exists(Path.Combine(d, "shared", "models")))
                ?? throw new DirectoryNotFoundException("no folder 'shared/models' beside any ancestor of " + Root);
            return Path.Combine([dir, "shared", .. parts]);
        }

        private static string? Up(string start, Func<string, bool> found)
        {
            for (var d = new DirectoryInfo(start); d != null; d = d.Parent)
                if (found(d.FullName)) return d.FullName;
            return null;
        }
    }

    /// <summary>Writes the table into docs/performance.md between the markers, keeping the rest of the file.</summary>
    internal static class Docs
    {
        /// <summary>One block per ISA level, so both tables live side by side: bench (native), bench-avx2, bench-avx512.</summary>
        private static string Marker(IsaLevel isa) => isa == IsaLevel.Native ? "bench" : "bench-" + isa.ToString().ToLowerInvariant();

        public static void Write(List<string> rows, BenchArgs a, DateTime started, TimeSpan elapsed, List<string> bandwidths)
        {
            string Begin = $"<!-- {Marker(a.Isa)}:begin -->", End = $"<!-- {Marker(a.Isa)}:end -->";
            string path = Path.Combine(Repo.Root, "docs", "performance.md");
            var block = new StringBuilder();
            block.AppendLine(Begin);
            block.AppendLine($"Measured {started:yyyy-MM-dd} on {Machine.Cpu()} ({Environment.ProcessorCount} logical cores), " +
                             $"{RuntimeInformation.FrameworkDescription} ({RuntimeInformation.ProcessArchitecture}, {BenchTiming.VectorDescription()}, " +
                             $"tiered compilation + dynamic PGO, measured after warm-up), against {LlamaCppBench.Version()}; --isa {a.Isa.ToString().ToLowerInvariant()}; weights {Comparison.LoadDescription(a)}. " +
                             $"Memory bound: weight bytes read per evaluation ÷ the single-thread read bandwidth over a working set of that size, measured in the same run ({string.Join("; ", bandwidths)}). " +
                             $"{a.Reps} interleaved repetitions per cell, each after {a.SettleMs} ms idle, mean ± sd; ratio: the median of the {a.Reps} back-to-back pairs' ratios; the whole run took {elapsed.TotalMinutes:F1} min.");
            block.AppendLine();
            foreach (var r in rows) block.AppendLine(r);
            block.Append(End);
            string text = File.Exists(path) ? File.ReadAllText(path) : "# Performance\n\n" + Begin + "\n" + End + "\n";
            int b = text.IndexOf(Begin, StringComparison.Ordinal), e = text.IndexOf(End, StringComparison.Ordinal);
            text = b >= 0 && e > b
                ? text[..b] + block + text[(e + End.Length)..]
                : text.TrimEnd() + "\n\n" + block + "\n";
            File.WriteAllText(path + ".tmp", text);
            File.Move(path + ".tmp", path, overwrite: true);
            Console.Error.WriteLine($"wrote the table into {path} ({Begin})");
        }
    }

    internal static class Machine
    {
        public static string Cpu()
        {
            try
            {
                // "AMD EPYC" alone does not say which generation ran (the VM's CPU changes between sittings): add the family and model.
                var lines = File.ReadLines("/proc/cpuinfo").Take(64).ToList();
                string? Field(string name) => lines.FirstOrDefault(l => l.StartsWith(name, StringComparison.Ordinal) && l.IndexOf(':') is int c && c > 0 && l[..c].Trim() == name) is { } l ? l[(l.IndexOf(':') + 1)..].Trim() : null;
                if (Field("model name") is { } model)
                    return Field("cpu family") is { } family && Field("model") is { } number ? $"{model}, family {family} model {number}" : model;
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            return RuntimeInformation.OSDescription;
        }
    }
}
