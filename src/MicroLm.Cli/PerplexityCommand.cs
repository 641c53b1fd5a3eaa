using System.Globalization;
using System.Runtime.InteropServices;
using MicroLm.IO;
using MicroLm.Models;
using MicroLm.Quality;

namespace MicroLm.Cli;

/// <summary>`microlm perplexity -m MODEL -f TEXT [-c CTX] [--chunks N] [-t N] [-b N]`, with llama.cpp's
/// `--kl-divergence-base FILE` (alone: save this model's log-probabilities to FILE; with `--kl-divergence`:
/// compare this model against FILE, whose token ids replace -f). Output as llama.cpp's perplexity prints it.</summary>
public static class PerplexityCommand
{
    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    public static readonly CommandSpec Spec = new()
    {
        Name = "perplexity",
        Synopsis = "-m FILE (-f TEXT | -p TEXT) [-c CTX] [--chunks N] [-t N] [-b N] [--kl-divergence-base FILE [--kl-divergence]]",
        Summary = "Perplexity as llama.cpp's perplexity tool computes it (chunks of CTX tokens, each scored on its second half); " +
                  "--kl-divergence-base FILE saves the log-probabilities, adding --kl-divergence compares this model against them.",
        Flags = [.. CommonFlags.Model,
            Flag.Path("-f|--file", "TEXT", "the text to score"),
            Flag.Text("-p|--prompt", "TEXT", "the text to score, given inline"),
            Flag.Int("-c|--ctx-size", "N", "tokens per chunk (default: the model's context length)", min: 4, max: 1 << 20),
            Flag.Int("--chunks", "N", "score at most N chunks; -1: all (default -1)", min: -1, max: 1 << 24),
            Flag.Int("-t|--threads", "N", "threads; more than the processors are not used (default 1)", min: 1),
            Flag.Int("-b|--batch-size", "N", "most tokens evaluated at once (default 512)", min: 1),
            Flag.Path("--kl-divergence-base", "FILE", "without --kl-divergence: save the log-probabilities here; with it: the base to compare against"),
            Flag.Switch("--kl-divergence", "compare against --kl-divergence-base (its token ids replace -f)"),
            .. CacheTypeFlags.Flags],
        Run = Run,
        ContractExample = ["-m", "$MODEL", "-p", "Once upon a time there was a little girl who liked to play in the park with her dog and her cat.", "-c", "8"],
    };

    public static int Run(Options o, TextWriter stdout, TextWriter stderr)
    {
        string? basePath = o.Get("--kl-divergence-base");
        bool kld = o.Has("--kl-divergence");
        if (kld && basePath == null) throw new UsageException("--kl-divergence needs --kl-divergence-base FILE (made by a run without --kl-divergence)");
        if (o.Get("--chunks") == "0") throw new UsageException("--chunks must be positive, or -1 for all");
        int threads = System.Math.Min(o.Int(1, "-t"), Environment.ProcessorCount);
        int batch = o.Int(512, "-b");
        using var model = Commands.LoadModel(o);
        return kld ? Kld(model, LogProbFile.Read(basePath!), o, threads, batch, stdout, stderr)
                   : Ppl(model, o, basePath, threads, batch, stdout, stderr);
    }

    private static int Ppl(Model model, Options o, string? basePath, int threads, int batch, TextWriter stdout, TextWriter stderr)
    {
        string text = o.Get("-p") ?? File.ReadAllText(o.Require("TEXT", "-f"));
        var tokens = model.Tokenizer.Encode(text, model.Tokenizer.AddBos).ToArray();
        int nCtx = o.Int(model.Config.ContextLength, "-c");
        int nChunk = Perplexity.Chunks(tokens.Length, nCtx, o.Int(-1, "--chunks"));
        int first = nCtx / 2, scored = nCtx - 1 - first, vocab = model.Config.VocabSize;
        stderr.WriteLine($"perplexity: {tokens.Length} tokens, {nChunk} chunks of {nCtx}, scoring the last {scored} positions of each");

        using var session = CacheTypeFlags.CreateSession(model, o, nCtx, threads, System.Math.Min(batch, nCtx));
        double nll = 0, nll2 = 0;
        long count = 0;
        var entries = new ushort[scored * Perplexity.EntriesPerToken(vocab)];
        int nv = Perplexity.EntriesPerToken(vocab);
        using var baseFile = basePath != null ? SafeFile.Create(basePath) : null;
        var baseStream = baseFile?.Stream;
        {
            if (baseStream != null) LogProbFile.WriteHeader(baseStream, nCtx, vocab, nChunk, tokens);
            for (int c = 0; c < nChunk; c++)
            {
                Perplexity.EvaluateChunk(session, model, tokens, c, nCtx, (i, next, logits) =>
                {
                    double v = baseStream != null
                        ? Perplexity.EncodeLogProbs(logits, next, entries.AsSpan(i * nv, nv))
                        : Perplexity.NegLogProb(logits, next);
                    nll += v;
                    nll2 += v * v;
                });
                if (baseStream != null) baseStream.Write(MemoryMarshal.AsBytes(entries.AsSpan()));
                count += scored;
                stdout.Write(string.Create(C, $"[{c + 1}]{System.Math.Exp(nll / count):F4},"));
                stdout.Flush();
            }
            stdout.WriteLine();
            baseFile?.Commit();
        }
        nll2 /= count;
        nll /= count;
        double ppl = System.Math.Exp(nll);
        nll2 -= nll * nll;
        if (nll2 > 0) stdout.WriteLine(string.Create(C, $"Final estimate: PPL = {ppl:F4} +/- {System.Math.Sqrt(nll2 / (count - 1)) * ppl:F5}"));
        else stdout.WriteLine(string.Create(C, $"Final estimate: PPL = {ppl:F4}"));
        return 0;
    }

    private static int Kld(Model model, LogProbFile file, Options o, int threads, int batch, TextWriter stdout, TextWriter stderr)
    {
        int vocab = model.Config.VocabSize;
        if (file.Vocab != vocab) throw new MicroLmException($"the base file was made with a vocabulary of {file.Vocab}, this model has {vocab}");
        int nCtx = file.NCtx;
        int nChunk = System.Math.Min(file.NChunk, o.Int(-1, "--chunks") is var n && n > 0 ? n : int.MaxValue);
        if (o.Has("-c") && o.Int(0, "-c") != nCtx) throw new UsageException($"the base file was made with a context of {nCtx}; -c must match or be left out");
        stderr.WriteLine($"kl-divergence: {nChunk} chunks of {nCtx} from the base file");
        using var session = CacheTypeFlags.CreateSession(model, o, nCtx, threads, System.Math.Min(batch, nCtx));
        var s = new Perplexity.KldStats();
        stdout.WriteLine("chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence              Δp RMS            Same top p");
        for (int c = 0; c < nChunk; c++)
        {
            Perplexity.EvaluateChunk(session, model, file.Tokens, c, nCtx, (i, next, logits) => Perplexity.AddKld(logits, file.Entries(c, i), next, s));
            var logPpl = Perplexity.MeanAndUncertainty(s.SumNll, s.SumNll2, s.Count);
            var logPplBase = Perplexity.MeanAndUncertainty(s.SumNllBase, s.SumNllBase2, s.Count);
            double cov = Perplexity.Covariance(s.SumNll, s.SumNllBase, s.SumNllNllBase, s.Count);
            double ratio = logPpl.Mean - logPplBase.Mean;
            double ratioUnc = System.Math.Sqrt(logPpl.Uncertainty * logPpl.Uncertainty + logPplBase.Uncertainty * logPplBase.Uncertainty - 2.0 * cov);
            var kl = Perplexity.MeanAndUncertainty(s.SumKld, s.SumKld2, s.Count);
            var mse = Perplexity.MeanAndUncertainty(s.SumPDiff2, s.SumPDiff4, s.Count);
            double rms = System.Math.Sqrt(mse.Mean), rmsUnc = 0.5 / rms * mse.Uncertainty;
            double top = 1.0 * s.SameTop / s.Count, topUnc = System.Math.Sqrt(top * (1 - top) / (s.Count - 1));
            stdout.WriteLine(string.Create(C,
                $"{c + 1,4}    {System.Math.Exp(logPpl.Mean),9:F4} ± {System.Math.Exp(logPpl.Mean) * logPpl.Uncertainty,9:F4}    {ratio,10:F5} ± {ratioUnc,10:F5}    {kl.Mean,10:F5} ± {kl.Uncertainty,10:F5}    {100 * rms,6:F3} ± {100 * rmsUnc,6:F3} %    {100 * top,6:F3} ± {100 * topUnc,6:F3} %"));
        }
        stdout.WriteLine();
        foreach (var line in Statistics(s)) stdout.WriteLine(line);
        return 0;
    }

    /// <summary>The summary llama.cpp prints after a KL-divergence run (it prints none under 100 tokens; we always do).</summary>
    internal static IEnumerable<string> Statistics(Perplexity.KldStats s)
    {
        var kld = s.Kld.Order().ToList();
        var pd = s.PDiff.Order().ToList();
        var logPpl = Perplexity.MeanAndUncertainty(s.SumNll, s.SumNll2, s.Count);
        double ppl = System.Math.Exp(logPpl.Mean), pplUnc = ppl * logPpl.Uncertainty;
        var logBase = Perplexity.MeanAndUncertainty(s.SumNllBase, s.SumNllBase2, s.Count);
        double pplBase = System.Math.Exp(logBase.Mean), pplBaseUnc = pplBase * logBase.Uncertainty;
        double cov = Perplexity.Covariance(s.SumNll, s.SumNllBase, s.SumNllNllBase, s.Count);
        double cor = cov / (logPpl.Uncertainty * logBase.Uncertainty);
        double ratio = logPpl.Mean - logBase.Mean;
        double ratioUnc = System.Math.Sqrt(logPpl.Uncertainty * logPpl.Uncertainty + logBase.Uncertainty * logBase.Uncertainty - 2.0 * cov);
        double pplCov = ppl * pplBase * cov;
        var kl = Perplexity.MeanAndUncertainty(s.SumKld, s.SumKld2, s.Count);
        var p = Perplexity.MeanAndUncertainty(s.SumPDiff, s.SumPDiff2, s.Count);
        var mse = Perplexity.MeanAndUncertainty(s.SumPDiff2, s.SumPDiff4, s.Count);
        double rms = System.Math.Sqrt(mse.Mean), rmsUnc = 0.5 / rms * mse.Uncertainty;
        double top = 1.0 * s.SameTop / s.Count, topUnc = System.Math.Sqrt(top * (1 - top) / (s.Count - 1));
        string F(FormattableString f) => f.ToString(C);
        return
        [
            "====== Perplexity statistics ======",
            F($"Mean PPL(Q)                   : {ppl,10:F6} ± {pplUnc,10:F6}"),
            F($"Mean PPL(base)                : {pplBase,10:F6} ± {pplBaseUnc,10:F6}"),
            F($"Cor(ln(PPL(Q)), ln(PPL(base))): {100.0 * cor,6:F2}%"),
            F($"Mean ln(PPL(Q)/PPL(base))     : {ratio,10:F6} ± {ratioUnc,10:F6}"),
            F($"Mean PPL(Q)/PPL(base)         : {System.Math.Exp(ratio),10:F6} ± {System.Math.Exp(ratio) * ratioUnc,10:F6}"),
            F($"Mean PPL(Q)-PPL(base)         : {ppl - pplBase,10:F6} ± {System.Math.Sqrt(pplUnc * pplUnc + pplBaseUnc * pplBaseUnc - 2.0 * pplCov),10:F6}"),
            "",
            "====== KL divergence statistics ======",
            F($"Mean    KLD: {kl.Mean,10:F6} ± {kl.Uncertainty,10:F6}"),
            F($"Maximum KLD: {kld[^1],10:F6}"),
            F($"99.9%   KLD: {Perplexity.Percentile(kld, 0.999f),10:F6}"),
            F($"99.0%   KLD: {Perplexity.Percentile(kld, 0.990f),10:F6}"),
            F($"95.0%   KLD: {Perplexity.Percentile(kld, 0.950f),10:F6}"),
            F($"90.0%   KLD: {Perplexity.Percentile(kld, 0.900f),10:F6}"),
            F($"Median  KLD: {Perplexity.Median(kld),10:F6}"),
            F($"10.0%   KLD: {Perplexity.Percentile(kld, 0.100f),10:F6}"),
            F($" 5.0%   KLD: {Perplexity.Percentile(kld, 0.050f),10:F6}"),
            F($" 1.0%   KLD: {Perplexity.Percentile(kld, 0.010f),10:F6}"),
            F($" 0.1%   KLD: {Perplexity.Percentile(kld, 0.001f),10:F6}"),
            F($"Minimum KLD: {kld[0],10:F6}"),
            "",
            "====== Token probability statistics ======",
            F($"Mean    Δp: {100.0 * p.Mean,6:F3} ± {100.0 * p.Uncertainty,5:F3} %"),
            F($"Maximum Δp: {100.0 * pd[^1],6:F3}%"),
            F($"99.9%   Δp: {100.0 * Perplexity.Percentile(pd, 0.999f),6:F3}%"),
            F($"99.0%   Δp: {100.0 * Perplexity.Percentile(pd, 0.990f),6:F3}%"),
            F($"95.0%   Δp: {100.0 * Perplexity.Percentile(pd, 0.950f),6:F3}%"),
            F($"90.0%   Δp: {100.0 * Perplexity.Percentile(pd, 0.900f),6:F3}%"),
            F($"75.0%   Δp: {100.0 * Perplexity.Percentile(pd, 0.750f),6:F3}%"),
            F($"Median  Δp: {100.0 * Perplexity.Median(pd),6:F3}%"),
            F($"25.0%   Δp: {100.0 * Perplexity.Percentile(pd, 0.250f),6:F3}%"),
            F($"10.0%   Δp: {100.0 * Perplexity.Percentile(pd, 0.100f),6:F3}%"),
            F($" 5.0%   Δp: {100.0 * Perplexity.Percentile(pd, 0.050f),6:F3}%"),
            F($" 1.0%   Δp: {100.0 * Perplexity.Percentile(pd, 0.010f),6:F3}%"),
            F($" 0.1%   Δp: {100.0 * Perplexity.Percentile(pd, 0.001f),6:F3}%"),
            F($"Minimum Δp: {100.0 * pd[0],6:F3}%"),
            F($"RMS Δp    : {100.0 * rms,6:F3} ± {100.0 * rmsUnc,5:F3} %"),
            F($"Same top p: {100.0 * top,6:F3} ± {100.0 * topUnc,5:F3} %"),
        ];
    }
}
