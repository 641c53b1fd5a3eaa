using System.Diagnostics;
using MicroLm.FixedPoint;
using MicroLm.Generation;
using MicroLm.Models;
using MicroLm.Tensors;

namespace MicroLm.Bench;

/// <summary>The fixed-point backend against the float backend (docs/fixed-point.md, docs/determinism.md,
/// docs/performance.md):
///   fixed ranges   largest |activation| per step (Q16.16 range decision)
///   fixed quality  greedy agreement, mean KL divergence and top-1 agreement per model and prompt
///   fixed speed    prefill and decode tok/s, float and fixed, 1 and 2 threads (ratios in the same run)</summary>
internal static class FixedReport
{
    public static readonly string[] Prompts =
    [
        "Once upon a time", "Lily and Tom went to the park", "The little dog", "One day, a girl named Sue found a",
        "The sun was hot and the bird", "Tim had a red ball. He",
    ];

    private static IEnumerable<(string Name, string Path)> Models(TextWriter log)
    {
        yield return ("stories260K F32", Repo.Shared("models", "gguf", "stories260K-F32.gguf"));
        yield return ("stories260K Q8_0", Repo.Shared("models", "gguf", "stories260K-Q8_0.gguf"));
        yield return ("stories260K Q4_0", Repo.Shared("models", "gguf", "stories260K-Q4_0.gguf"));
        yield return ("synthetic stories15M F32", BenchModels.Ensure(Shape.Find("15M"), GgmlType.F32, log));
        yield return ("synthetic stories15M Q8_0", BenchModels.Ensure(Shape.Find("15M"), GgmlType.Q8_0, log));
        foreach (var name in new[] { "pythia-14m-synthetic-F32", "pythia-14m-synthetic-Q8_0" })
        {
            string path = Path.Combine(Repo.Root, "artifacts", "models", name + ".gguf");
            if (File.Exists(path)) yield return (name, path);
            else log.WriteLine($"  ({path} missing: scripts/determinism-matrix writes it)");
        }
    }

    public static int Run(string[] args)
    {
        string what = args.Length > 0 ? args[0] : "";
        int n = args.Length > 1 ? int.Parse(args[1]) : 64;
        switch (what)
        {
            case "ranges": Ranges(); return 0;
            case "quality": Quality(n); return 0;
            case "speed": Speed(args.Length > 1 ? int.Parse(args[1]) : 3); return 0;
            default:
                Console.Error.WriteLine("usage: MicroLm.Bench fixed ranges | quality [N] | speed [REPS]");
                return 2;
        }
    }

    private static void Ranges()
    {
        Console.WriteLine("| model | step | max abs | rms |");
        Console.WriteLine("| --- | --- | ---: | ---: |");
        foreach (var (name, path) in Models(Console.Error))
        {
            using var model = Model.Load(path, Backend.Fixed);
            var probe = new RangeProbe();
            foreach (var prompt in Prompts)
            {
                using var s = model.CreateSession(256, 1, 256);
                ((IFixedPass)s.Pass).Batch.Probe = probe;
                var gen = new Generator(s, new SamplingOptions { Temperature = 0 }) { StopAtEndOfSequence = false };
                foreach (var _ in gen.Generate(model.Tokenizer.Encode(prompt, model.Tokenizer.AddBos), 64)) { }
            }
            foreach (var (step, (max, squares, count)) in probe.Seen.OrderBy(k => k.Key, StringComparer.Ordinal))
                Console.WriteLine($"| {name} | {step} | {max / 65536.0:G4} | {System.Math.Sqrt((double)squares / count) / 65536.0:G4} |");
        }
    }

    private static void Quality(int n)
    {
        Console.WriteLine($"| model | prompt | greedy tokens identical (of {n}) | mean KL(float‖fixed) | top-1 agreement | max abs Δlogit |");
        Console.WriteLine("| --- | --- | ---: | ---: | ---: | ---: |");
        foreach (var (name, path) in Models(Console.Error))
        {
            using var floatModel = Model.Load(path, Backend.Float);
            using var fixedModel = Model.Load(path, Backend.Fixed);
            double klAll = 0, agreeAll = 0, identicalAll = 0; int positionsAll = 0;
            foreach (var prompt in Prompts)
            {
                var tokens = floatModel.Tokenizer.Encode(prompt, floatModel.Tokenizer.AddBos);
                var floatRun = Greedy(floatModel, tokens, n, out var floatLogits);
                var fixedRun = Greedy(fixedModel, tokens, n, out _);
                int identical = 0;
                while (identical < n && floatRun[identical] == fixedRun[identical]) identical++;
                // Teacher-forced on the float run's tokens: the fixed logits at every position.
                var sequence = tokens.Concat(floatRun).ToArray();
                using var s = fixedModel.CreateSession(sequence.Length + 1, 1, 64);
                var fixedLogits = new List<float[]>();
                s.Evaluate(sequence, 0, (pos, token, logits) => fixedLogits.Add(logits.ToArray()));
                double kl = 0, maxDiff = 0; int agree = 0, count = System.Math.Min(floatLogits.Count, fixedLogits.Count);
                for (int i = 0; i < count; i++)
                {
                    var p = floatLogits[i]; var q = fixedLogits[i];
                    kl += Kl(p, q);
                    if (ArgMax(p) == ArgMax(q)) agree++;
                    for (int j = 0; j < p.Length; j++) maxDiff = System.Math.Max(maxDiff, System.Math.Abs(p[j] - q[j]));
                }
                Console.WriteLine($"| {name} | {prompt} | {identical} | {kl / count:E2} | {agree}/{count} | {maxDiff:G3} |");
                klAll += kl; agreeAll += agree; positionsAll += count; identicalAll += identical;
            }
            Console.WriteLine($"| **{name}** | all {Prompts.Length} | mean {identicalAll / Prompts.Length:F1} | {klAll / positionsAll:E2} | {agreeAll / positionsAll:P2} | |");
        }
    }

    private static int[] Greedy(Model model, List<int> prompt, int n, out List<float[]> logits)
    {
        using var s = model.CreateSession(prompt.Count + n + 1, 1, 64);
        var all = new List<float[]>();
        var gen = new Generator(s, new SamplingOptions { Temperature = 0 })
        {
            StopAtEndOfSequence = false, EvaluateLastToken = true,
            OnLogits = (pos, token, l) => all.Add(l.ToArray()),
        };
        var result = gen.Generate(prompt, n).Select(t => t.Id).ToArray();
        logits = all;
        return result;
    }

    private static int ArgMax(float[] x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }

    /// <summary>KL(softmax p ‖ softmax q) in nats, in double.</summary>
    private static double Kl(float[] p, float[] q)
    {
        double mp = p.Max(), mq = q.Max(), sp = 0, sq = 0;
        foreach (var v in p) sp += System.Math.Exp(v - mp);
        foreach (var v in q) sq += System.Math.Exp(v - mq);
        double kl = 0;
        for (int i = 0; i < p.Length; i++)
        {
            double lp = p[i] - mp - System.Math.Log(sp), lq = q[i] - mq - System.Math.Log(sq);
            kl += System.Math.Exp(lp) * (lp - lq);
        }
        return System.Math.Max(0, kl);
    }

    private static void Speed(int reps)
    {
        Console.WriteLine($"CPU: {Environment.ProcessorCount} logical cores; median of {reps}; prompt 64 tokens, 64 decoded");
        Console.WriteLine("| model | threads | float prefill tok/s | fixed prefill tok/s | fixed/float | float decode tok/s | fixed decode tok/s | fixed/float |");
        Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var (name, path) in Models(Console.Error))
        {
            if (name.StartsWith("stories260K Q4", StringComparison.Ordinal)) continue;
            using var floatModel = Model.Load(path, Backend.Float);
            using var fixedModel = Model.Load(path, Backend.Fixed);
            foreach (int threads in new[] { 1, 2 })
            {
                var f = Time(floatModel, threads, reps);
                var x = Time(fixedModel, threads, reps);
                Console.WriteLine($"| {name} | {threads} | {f.Prefill:F0} | {x.Prefill:F0} | {x.Prefill / f.Prefill:F2} | {f.Decode:F0} | {x.Decode:F0} | {x.Decode / f.Decode:F2} |");
            }
        }
    }

    private static (double Prefill, double Decode) Time(Model model, int threads, int reps)
    {
        var prompt = Enumerable.Range(0, 64).Select(i => 3 + i % System.Math.Max(1, model.Config.VocabSize - 3)).ToArray();
        var prefill = new List<double>(); var decode = new List<double>();
        for (int r = 0; r <= reps; r++) // the first run warms up
        {
            using var s = model.CreateSession(160, threads, 64);
            var sw = Stopwatch.StartNew();
            s.Evaluate(prompt, 0, null, lastLogitsOnly: true);
            double p = sw.Elapsed.TotalSeconds;
            var one = new int[1];
            sw.Restart();
            for (int i = 0; i < 64; i++) { one[0] = 3 + i; s.Evaluate(one, 1); }
            double d = sw.Elapsed.TotalSeconds;
            if (r == 0) continue;
            prefill.Add(64 / p); decode.Add(64 / d);
        }
        prefill.Sort(); decode.Sort();
        return (prefill[prefill.Count / 2], decode[decode.Count / 2]);
    }
}
