using System.Globalization;
using System.Security.Cryptography;
using MicroLm.Train;

namespace MicroLm.Cli;

/// <summary>microlm train: generates the story corpus, trains its tokenizer and a LLaMA on it, and writes
/// the model as GGUF. Deterministic: the same flags give the same bytes for any -t and on any CPU.</summary>
public static class TrainCommand
{
    public const string Usage = """
        train -o OUT.gguf [--steps N] [--batch B] [--seq S] [--dim D] [--hidden H] [--layers L] [--heads N]
              [--vocab V] [--lr LR] [--warmup W] [--seed S] [--corpus-bytes N] [--checkpoint-every N] [-t THREADS]
              [--corpus-out FILE]
        """;

    public static int Run(Options o, TextWriter stdout, TextWriter stderr)
    {
        string output = o.Require("OUT.gguf", "-o", "--output");
        var defaults = new TrainOptions();
        var model = new TrainConfig();
        model = model with
        {
            Dim = Positive(o, model.Dim, "--dim"),
            Hidden = Positive(o, model.Hidden, "--hidden"),
            Layers = Positive(o, model.Layers, "--layers"),
            Heads = Positive(o, model.Heads, "--heads"),
            Vocab = Positive(o, model.Vocab, "--vocab"),
            SeqLen = Positive(o, model.SeqLen, "--seq"),
        };
        if (model.Vocab < 300 || model.Vocab > 32000) throw new UsageException("--vocab must be between 300 and 32000");
        var options = defaults with
        {
            Model = model,
            Seed = o.ULong(defaults.Seed, "--seed", "-s"),
            CorpusBytes = Positive(o, defaults.CorpusBytes, "--corpus-bytes"),
            Steps = Positive(o, defaults.Steps, "--steps"),
            Batch = Positive(o, defaults.Batch, "--batch", "-b"),
            LearningRate = o.Float(defaults.LearningRate, "--lr"),
            WarmupSteps = System.Math.Max(1, o.Int(defaults.WarmupSteps, "--warmup")),
            CheckpointEvery = o.Int(defaults.CheckpointEvery, "--checkpoint-every"),
            Threads = Positive(o, System.Math.Max(1, Environment.ProcessorCount), "-t", "--threads"),
        };
        if (!(options.LearningRate > 0 && options.LearningRate < 1)) throw new UsageException("--lr must be between 0 and 1");
        try { model.Validate(); }
        catch (MicroLmException e) { throw new UsageException(e.Message); }

        if (o.Get("--corpus-out") is { } corpusPath)
        {
            var (train, held) = Training.Corpus(options);
            Training.WriteAtomically(corpusPath, System.Text.Encoding.UTF8.GetBytes(string.Join('\n', train.Concat(held)) + "\n"));
        }
        var run = new Training(options, stderr);
        var bytes = run.Run(output);
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{Convert.ToHexStringLower(SHA256.HashData(bytes))}  {output} ({bytes.Length:N0} bytes, held-out loss {run.HeldOutLoss:F4})"));
        return 0;
    }

    private static int Positive(Options o, int fallback, params string[] names)
    {
        int v = o.Int(fallback, names);
        return v > 0 ? v : throw new UsageException($"{names[0]} must be positive");
    }
}
