using MicroLm.Cli;
using MicroLm.Gguf;
using MicroLm.Tensors;
using MicroLm.Tensors.Quants;

namespace MicroLm.Bench;

/// <summary>--decode-kernels: the matrix-vector products of one decode step alone, timed in process CPU time (so a busy
/// machine slows the figures less than wall time would): every 2-D weight of the synthetic bench model of each shape and
/// format (all layers and the classifier, tied or not, but not an untied token embedding, read in place from the file, so the weights stream from memory as in a
/// real decode), one thread, through <see cref="WeightMatrix.PrepareOne"/> and <see cref="WeightMatrix.MatMul"/> with one
/// token; an input is prepared once for the matrices that share it (q/k/v, gate/up), as the forward pass does. Min
/// over --reps runs of ~0.5 s each, after a warm-up that lets the JIT reach its final tier. No peer: for comparing kernels.</summary>
internal static class DecodeKernels
{
    public static void Run(BenchArgs a, TextWriter output)
    {
        output.WriteLine($"decode matmuls (all layers + classifier), 1 token, 1 thread, process CPU time; {BenchTiming.VectorDescription()}");
        output.WriteLine("| shape | format | ms CPU per token | matmul-only tok/s | GMAC/s |");
        output.WriteLine("| --- | --- | ---: | ---: | ---: |");
        var rng = new Random(5);
        foreach (var shape in a.Shapes)
            foreach (var format in a.Formats)
            {
                var file = GgufFile.Open(BenchModels.Ensure(shape, format, Console.Error));
                var work = new List<(WeightMatrix Matrix, Activation X, bool Fresh, float[] Output)>();
                var inputs = new Dictionary<int, Activation>();
                long macs = 0;
                // An untied model's token embedding is looked up one row per token, not multiplied.
                bool untied = file.FindTensor("output.weight") != null;
                foreach (var t in file.Tensors)
                {
                    if (t.Shape.Length != 2 || (untied && t.Name == "token_embd.weight")) continue;
                    var m = new WeightMatrix(file, t);
                    // One input per (layer, input vector): k/v read q's input, up reads gate's.
                    bool shares = t.Name.EndsWith("attn_k.weight", StringComparison.Ordinal) || t.Name.EndsWith("attn_v.weight", StringComparison.Ordinal)
                        || t.Name.EndsWith("ffn_up.weight", StringComparison.Ordinal);
                    Activation x;
                    if (shares && work.Count > 0 && work[^1].X.Length == m.Columns) x = work[^1].X;
                    else
                    {
                        x = new Activation(m.Columns);
                        for (int i = 0; i < m.Columns; i++) x.Values[i] = (float)(rng.NextDouble() - 0.5) * 4;
                        shares = false;
                    }
                    work.Add((m, x, !shares, new float[m.Rows]));
                    macs += (long)m.Rows * m.Columns;
                }
                var one = new Activation[1];
                void Pass()
                {
                    foreach (var (m, x, fresh, o) in work)
                    {
                        one[0] = x;
                        if (fresh) { x.Invalidate(); WeightMatrix.PrepareOne(m, one); }
                        m.MatMul(one, 1, o, 0, m.Rows);
                    }
                }
                double best = KernelTiming.BestCpuSecondsPerPass(Pass, a.Reps, 2, 0.5);
                output.WriteLine($"| {shape.Name} | {format} | {best * 1e3:F3} | {1 / best:F1} | {macs / best / 1e9:F2} |");
            }
    }
}
