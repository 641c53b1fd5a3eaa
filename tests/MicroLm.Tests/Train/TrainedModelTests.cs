using MicroLm.Models;
using MicroLm.Train;

namespace MicroLm.Tests.Train;

/// <summary>A model written by the trainer loads in the runtime and computes what the trainer computed.</summary>
public sealed class TrainedModelTests
{
    internal static readonly TrainOptions Tiny = new()
    {
        Model = new TrainConfig { Dim = 32, Hidden = 64, Layers = 2, Heads = 4, Vocab = 320, SeqLen = 32 },
        CorpusBytes = 60_000, Steps = 6, Batch = 2, WarmupSteps = 2, EvalBatches = 1, CheckpointEvery = 0, Seed = 5,
    };

    [Fact]
    public void RuntimeLogitsMatchTheTrainersForward()
    {
        string path = Path.Combine(Path.GetTempPath(), $"microlm-train-{Guid.NewGuid():N}.gguf");
        try
        {
            var bytes = new Training(Tiny, TextWriter.Null).Run(path);
            Assert.Equal(bytes, File.ReadAllBytes(path));
            using var model = Model.Load(bytes);
            Assert.Equal("llama", model.Config.Architecture);

            var (_, held) = Training.Corpus(Tiny);
            int[] ids = Training.Stream(held, model.Tokenizer);
            int S = Tiny.Model.SeqLen;
            var cfg = Tiny.Model with { Vocab = model.Config.VocabSize };
            var net = new LlamaTrainer(cfg, batch: 1, threads: 1);
            var w = new float[net.Layout.Count];
            foreach (var e in net.Layout.Entries)
                model.File.GetTensorData(model.File.FindTensor(e.Name)!).Span.CopyTo(System.Runtime.InteropServices.MemoryMarshal.AsBytes(w.AsSpan(e.Offset, e.Size)));
            var wt = new float[w.Length];
            foreach (var e in net.Layout.Entries) if (e.IsMatrix) TrainKernels.Transpose(w, e.Offset, e.Rows, e.Cols, wt, e.Offset);
            net.Step(w, wt, ids[..S], ids[1..(S + 1)], null);
            var trainer = net.Logits.ToArray();

            using var session = model.CreateSession(S, 1, 8);
            double worst = 0;
            int seen = 0;
            session.Evaluate(ids.AsSpan(0, S), onLogits: (pos, _, logits) =>
            {
                seen++;
                for (int v = 0; v < logits.Length; v++)
                    worst = System.Math.Max(worst, System.Math.Abs(logits[v] - trainer[pos * logits.Length + v]));
            });
            // Different summation orders in float over a 32-wide model: differences of a few ulps of values ~1-10.
            Assert.Equal(S, seen);
            Assert.True(worst < 1e-3, $"largest logit difference {worst}");
        }
        finally { File.Delete(path); }
    }
}
