using System.Globalization;
using MicroLm.IO;
using MicroLm.Train;

namespace MicroLm.Cli;

/// <summary>microlm train: generates the story corpus, trains its tokenizer and a LLaMA on it, and writes
/// the model as GGUF. Deterministic: the same flags give the same bytes for any -t and on any CPU.</summary>
public static class TrainCommand
{
    public static readonly CommandSpec Spec = new()
    {
        Name = "train",
        Synopsis = "-o OUT.gguf [--steps N] [--batch B] [--seq S] [--dim D] [--hidden H] [--layers L] [--heads N] [--vocab V] [--seed S] [-t THREADS] ...",
        Summary = "Generates the story corpus, trains a tokenizer and a LLaMA on it, and writes the model as GGUF (the same options give the same bytes on any CPU and thread count).",
        Flags =
        [
            Flag.Path("-o|--output", "OUT.gguf", "the model to write (checkpoints replace it as training goes)"),
            Flag.Int("--steps", "N", "optimiser steps (default 1000)", min: 1, max: 10_000_000),
            Flag.Int("--batch|-b", "B", "sequences per step (default 16)", min: 1, max: 4096),
            Flag.Int("--seq", "S", "tokens per sequence, the model's context (default 128)", min: 2, max: 4096),
            Flag.Int("--dim", "D", "embedding width (default 128)", min: 2, max: 4096),
            Flag.Int("--hidden", "H", "feed-forward width (default 384)", min: 1, max: 16384),
            Flag.Int("--layers", "L", "transformer blocks (default 4)", min: 1, max: 64),
            Flag.Int("--heads", "N", "attention heads; must divide --dim into an even head size (default 4)", min: 1, max: 256),
            Flag.Int("--vocab", "V", "tokenizer pieces, 256 byte pieces included (default 1024)", min: 300, max: 32000),
            Flag.Float("--lr", "LR", "peak learning rate (default 0.003)", min: 1e-9, max: 1),
            Flag.Int("--warmup", "W", "warm-up steps (default 50)", min: 0, max: 10_000_000),
            Flag.UInt64("--seed|-s", "S", "seed of the corpus, the initial weights and the batches (default 1)"),
            Flag.Int("--corpus-bytes", "N", "size of the generated corpus (default 4000000)", min: 10_000, max: 1_000_000_000),
            Flag.Int("--checkpoint-every", "N", "write the model every N steps; 0: only at the end (default 100)", min: 0),
            Flag.Int("-t|--threads", "N", "threads; the result does not depend on it (default: the processor count)", min: 1, max: 1024),
            Flag.Path("--corpus-out", "FILE", "also write the generated stories to FILE"),
        ],
        Run = Run,
        ContractExample = ["-o", "$OUT", "--steps", "1", "--batch", "1", "--seq", "8", "--dim", "8", "--hidden", "8", "--layers", "1",
            "--heads", "2", "--vocab", "400", "--corpus-bytes", "20000", "-t", "1"],
    };

    public static int Run(Options o, TextWriter stdout, TextWriter stderr)
    {
        string output = o.Require("OUT.gguf", "-o", "--output");
        SafeFile.CheckTarget(output); // before training, not after half an hour of it
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
            SafeFile.WriteAllBytes(corpusPath, System.Text.Encoding.UTF8.GetBytes(string.Join('\n', train.Concat(held)) + "\n"));
        }
        var run = new Training(options, stderr);
        var bytes = run.Run(output);
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{Convert.ToHexStringLower(MicroLm.Generation.Sha256.HashData(bytes))}  {output} ({bytes.Length:N0} bytes, held-out loss {run.HeldOutLoss:F4})"));
        return 0;
    }

    private static int Positive(Options o, int fallback, params string[] names)
    {
        int v = o.Int(fallback, names);
        return v > 0 ? v : throw new UsageException($"{names[0]} must be positive");
    }
}
