using System.Diagnostics;
using System.Globalization;
using MicroLm.Gguf;
using MicroLm.IO;
using MicroLm.Tensors;

namespace MicroLm.Train;

/// <summary>Everything that fixes a training run; the same options give the same GGUF bytes.</summary>
internal sealed record TrainOptions
{
    public TrainConfig Model { get; init; } = new();
    public ulong Seed { get; init; } = 1;
    public int CorpusBytes { get; init; } = 4_000_000;
    public int Steps { get; init; } = 1000;
    public int Batch { get; init; } = 16;
    public float LearningRate { get; init; } = 3e-3f;
    public float MinLearningRateRatio { get; init; } = 0.1f;
    public int WarmupSteps { get; init; } = 50;
    public float WeightDecay { get; init; } = 0.1f;
    public float ClipNorm { get; init; } = 1f;
    public float Beta1 { get; init; } = 0.9f;
    public float Beta2 { get; init; } = 0.95f;
    public float AdamEps { get; init; } = 1e-8f;
    public int EvalBatches { get; init; } = 8;
    public int CheckpointEvery { get; init; } = 100;
    public int Threads { get; init; } = 1;
}

/// <summary>A training run: corpus, tokenizer, AdamW with warm-up and cosine decay, global-norm
/// gradient clipping, checkpoints written as GGUF (to a temporary name, then renamed).</summary>
internal sealed class Training(TrainOptions o, TextWriter log)
{
    public double HeldOutLoss { get; private set; } = double.NaN;
    public double LastTrainLoss { get; private set; } = double.NaN;

    public static (List<string> Train, List<string> HeldOut) Corpus(TrainOptions o)
    {
        var stories = StoryCorpus.Generate(o.Seed, o.CorpusBytes);
        int held = System.Math.Max(1, stories.Count / 50);
        return (stories[..^held], stories[^held..]);
    }

    public static int[] Stream(IEnumerable<string> stories, MicroLm.Tokenizer tok)
    {
        var ids = new List<int>();
        foreach (var s in stories) ids.AddRange(tok.Encode(s, addBos: true));
        return [.. ids];
    }

    /// <summary>Trains and writes the model to <paramref name="output"/>; returns the final GGUF bytes.</summary>
    public byte[] Run(string output)
    {
        var sw = Stopwatch.StartNew();
        var (train, heldOut) = Corpus(o);
        var vocab = TrainedVocabulary.Train(train, o.Model.Vocab);
        var model = o.Model with { Vocab = vocab.Pieces.Length };
        var tokenizer = vocab.CreateTokenizer();
        int[] trainIds = Stream(train, tokenizer), heldIds = Stream(heldOut, tokenizer);
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"microlm: corpus {train.Count + heldOut.Count} stories ({o.CorpusBytes:N0} bytes), vocabulary {model.Vocab}, {trainIds.Length:N0} training tokens, {heldIds.Length:N0} held out ({sw.Elapsed.TotalSeconds:F1} s)"));
        if (trainIds.Length <= model.SeqLen + 1 || heldIds.Length <= model.SeqLen + 1)
            throw new MicroLmException("the corpus is too small for the sequence length (raise --corpus-bytes)");

        var net = new LlamaTrainer(model, o.Batch, o.Threads);
        var layout = net.Layout;
        var w = net.Initialize(o.Seed ^ 0x5EED5EED5EED5EEDUL);
        var wt = new float[w.Length];
        var grad = new float[w.Length];
        var m = new float[w.Length];
        var v = new float[w.Length];
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"microlm: LLaMA dim {model.Dim}, hidden {model.Hidden}, {model.Layers} layers, {model.Heads} heads, context {model.SeqLen}: {w.Length:N0} parameters; {o.Steps} steps of {o.Batch}x{model.SeqLen} tokens, {o.Threads} thread(s)"));

        var rng = new SplitMix(o.Seed ^ 0xDA7ADA7ADA7ADA7AUL);
        int T = o.Batch * model.SeqLen;
        var inputs = new int[T];
        var targets = new int[T];
        double b1Power = 1, b2Power = 1;
        var stepClock = Stopwatch.StartNew();
        double smoothed = double.NaN;
        for (int step = 1; step <= o.Steps; step++)
        {
            for (int b = 0; b < o.Batch; b++)
            {
                int start = rng.Below(trainIds.Length - model.SeqLen - 1);
                Array.Copy(trainIds, start, inputs, b * model.SeqLen, model.SeqLen);
                Array.Copy(trainIds, start + 1, targets, b * model.SeqLen, model.SeqLen);
            }
            Transposed(layout, w, wt);
            double loss = net.Step(w, wt, inputs, targets, grad);
            if (!double.IsFinite(loss)) throw new MicroLmException($"training diverged at step {step} (loss {loss})");
            LastTrainLoss = loss;

            // Global gradient norm, summed in index order.
            double norm2 = 0;
            foreach (float g in grad) norm2 += (double)g * g;
            double norm = System.Math.Sqrt(norm2);
            float clip = norm > o.ClipNorm ? (float)(o.ClipNorm / norm) : 1f;
            float lr = LearningRate(step);
            b1Power *= o.Beta1; b2Power *= o.Beta2;
            float bc1 = (float)(1 - b1Power), bc2 = (float)(1 - b2Power);
            foreach (var e in layout.Entries)
            {
                float decay = e.IsMatrix ? o.WeightDecay : 0f;
                int off = e.Offset, size = e.Size;
                TrainKernels.For((size + 4095) / 4096, o.Threads, chunk =>
                {
                    int end = System.Math.Min(size, (chunk + 1) * 4096);
                    for (int i = off + chunk * 4096; i < off + end; i++)
                    {
                        float g = grad[i] * clip;
                        m[i] = o.Beta1 * m[i] + (1f - o.Beta1) * g;
                        v[i] = o.Beta2 * v[i] + (1f - o.Beta2) * (g * g);
                        float mh = m[i] / bc1, vh = v[i] / bc2;
                        w[i] -= lr * (mh / (MathF.Sqrt(vh) + o.AdamEps) + decay * w[i]);
                    }
                });
            }

            smoothed = double.IsNaN(smoothed) ? loss : 0.9 * smoothed + 0.1 * loss;
            if (step == 1 || step % 10 == 0 || step == o.Steps)
            {
                double perStep = stepClock.Elapsed.TotalSeconds / step;
                log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"step {step,5}/{o.Steps}  loss {loss:F4} (avg {smoothed:F4})  |g| {norm:F3}  lr {lr:E2}  {perStep:F2} s/step  {T / perStep:F0} tok/s  eta {TimeSpan.FromSeconds(perStep * (o.Steps - step)):hh\\:mm\\:ss}"));
            }
            if (o.CheckpointEvery > 0 && step % o.CheckpointEvery == 0 && step < o.Steps)
                WriteModel(output, ToGguf(model, vocab, layout, w, step, double.NaN));
        }

        HeldOutLoss = Evaluate(net, layout, w, wt, heldIds, model.SeqLen, T);
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"microlm: held-out loss {HeldOutLoss:F4} over {System.Math.Min(o.EvalBatches * T, heldIds.Length - 1):N0} tokens; training took {sw.Elapsed.TotalMinutes:F1} min"));
        var bytes = ToGguf(model, vocab, layout, w, o.Steps, HeldOutLoss);
        WriteModel(output, bytes);
        return bytes;
    }

    /// <summary>Linear warm-up to the peak, then cosine decay to MinLearningRateRatio of it.</summary>
    internal float LearningRate(int step)
    {
        if (step <= o.WarmupSteps) return o.LearningRate * step / o.WarmupSteps;
        double progress = (double)(step - o.WarmupSteps) / System.Math.Max(1, o.Steps - o.WarmupSteps);
        double cos = 0.5 * (1 + MicroLm.Math.DetMath.CosD(System.Math.PI * progress));
        return (float)(o.LearningRate * (o.MinLearningRateRatio + (1 - o.MinLearningRateRatio) * cos));
    }

    private double Evaluate(LlamaTrainer net, ParamLayout layout, float[] w, float[] wt, int[] ids, int seq, int T)
    {
        Transposed(layout, w, wt);
        var inputs = new int[T];
        var targets = new int[T];
        double total = 0;
        int batches = 0;
        int windows = (ids.Length - 1) / seq;
        int perBatch = T / seq;
        for (int first = 0; first + perBatch <= windows && batches < o.EvalBatches; first += perBatch, batches++)
        {
            for (int b = 0; b < perBatch; b++)
            {
                Array.Copy(ids, (first + b) * seq, inputs, b * seq, seq);
                Array.Copy(ids, (first + b) * seq + 1, targets, b * seq, seq);
            }
            total += net.Step(w, wt, inputs, targets, grad: null);
        }
        return batches == 0 ? double.NaN : total / batches;
    }

    private static void Transposed(ParamLayout layout, float[] w, float[] wt)
    {
        foreach (var e in layout.Entries)
            if (e.IsMatrix) TrainKernels.Transpose(w, e.Offset, e.Rows, e.Cols, wt, e.Offset);
    }

    private byte[] ToGguf(TrainConfig c, TrainedVocabulary vocab, ParamLayout layout, float[] w, int step, double heldOut)
    {
        var g = new GgufWriter();
        g.Add("general.architecture", "llama");
        g.Add("general.name", "microlm-stories");
        g.Add("general.description", "A tiny LLaMA trained by MicroLm on its own procedurally generated children's stories");
        g.Add("llama.context_length", (uint)c.SeqLen);
        g.Add("llama.embedding_length", (uint)c.Dim);
        g.Add("llama.feed_forward_length", (uint)c.Hidden);
        g.Add("llama.block_count", (uint)c.Layers);
        g.Add("llama.attention.head_count", (uint)c.Heads);
        g.Add("llama.attention.head_count_kv", (uint)c.Heads);
        g.Add("llama.attention.layer_norm_rms_epsilon", c.Eps);
        g.Add("llama.rope.dimension_count", (uint)c.HeadDim);
        g.Add("llama.rope.freq_base", c.RopeBase);
        g.Add("llama.vocab_size", (uint)c.Vocab);
        g.Add("general.file_type", 0u);
        g.Add("microlm.train.seed", GgufValueType.UInt64, o.Seed);
        g.Add("microlm.train.steps", (uint)step);
        g.Add("microlm.train.batch", (uint)o.Batch);
        g.Add("microlm.train.corpus_bytes", (uint)o.CorpusBytes);
        g.Add("microlm.train.learning_rate", o.LearningRate);
        if (!double.IsNaN(heldOut)) g.Add("microlm.train.held_out_loss", (float)heldOut);
        vocab.WriteTo(g);
        foreach (var e in layout.Entries)
        {
            var data = new byte[e.Size * 4];
            Buffer.BlockCopy(w, e.Offset * 4, data, 0, data.Length);
            if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("GGUF is little-endian");
            g.AddTensor(e.Name, GgmlType.F32, e.Rows == 1 ? [e.Cols] : [e.Cols, e.Rows], data);
        }
        return g.ToArray();
    }

    /// <summary>Writes a checkpoint or the final model through SafeFile (temporary file beside it, flushed, loaded
    /// back as a model, then renamed): a failed write leaves an existing file as it was.</summary>
    public static void WriteModel(string path, byte[] bytes) =>
        SafeFile.WriteAllBytes(path, bytes, check: temp => Model.Load(temp).Dispose());
}
