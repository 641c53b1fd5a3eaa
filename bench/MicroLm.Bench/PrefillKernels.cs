using MicroLm.Cli;
using MicroLm.Gguf;
using MicroLm.Tensors;
using MicroLm.Tensors.Quants;

namespace MicroLm.Bench;

/// <summary>--prefill-kernels: the batched matrix products of prefill alone, timed in process CPU time (so a busy machine
/// slows the figures less than wall time would): one layer's matrices of each shape (dim × dim, hidden × dim, dim × hidden),
/// seeded random weights in each format, -p tokens, one thread, through <see cref="WeightMatrix.MatMul"/>; min over --reps
/// runs of ~0.4 s each, after a warm-up that lets the JIT reach its final tier. No peer: this is for comparing kernels.</summary>
internal static class PrefillKernels
{
    public static void Run(BenchArgs a, TextWriter output)
    {
        output.WriteLine($"prefill matmuls, {a.Prompt} tokens, 1 thread, process CPU time; {BenchTiming.VectorDescription()}");
        output.WriteLine("| shape | format | ms CPU per layer | GMAC/s |");
        output.WriteLine("| --- | --- | ---: | ---: |");
        var rng = new Random(5);
        foreach (var shape in a.Shapes)
            foreach (var format in a.Formats)
            {
                var sizes = new (int Rows, int Columns)[] { (shape.Dim, shape.Dim), (shape.Hidden, shape.Dim), (shape.Dim, shape.Hidden) };
                var writer = new GgufWriter().Add("general.architecture", "llama");
                foreach (var (rows, columns) in sizes)
                {
                    var values = new float[rows * columns];
                    for (int i = 0; i < values.Length; i++) values[i] = (float)(rng.NextDouble() - 0.5) * 0.1f;
                    writer.AddTensor($"m{rows}x{columns}", format, [columns, rows], Quantizer.Quantize(format, values, columns));
                }
                var file = GgufFile.FromMemory(writer.ToArray());
                var work = new List<(WeightMatrix Matrix, Activation[] Xs, float[] Output)>();
                long macs = 0;
                foreach (var t in file.Tensors)
                {
                    var m = new WeightMatrix(file, t);
                    var xs = new Activation[a.Prompt];
                    for (int k = 0; k < xs.Length; k++)
                    {
                        xs[k] = new Activation(m.Columns);
                        for (int i = 0; i < m.Columns; i++) xs[k].Values[i] = (float)(rng.NextDouble() - 0.5) * 4;
                        WeightMatrix.Prepare(m, xs, k, k + 1);
                    }
                    work.Add((m, xs, new float[xs.Length * m.Rows]));
                    macs += (long)m.Rows * m.Columns * xs.Length;
                }
                // Dim×dim counts four times in a layer (q, k, v, output), hidden×dim twice (gate, up), dim×hidden once.
                long layerMacs = macs + (long)shape.Dim * shape.Dim * a.Prompt * 3 + (long)shape.Hidden * shape.Dim * a.Prompt;
                void Pass() { foreach (var (m, xs, o) in work) m.MatMul(xs, xs.Length, o, 0, m.Rows); }
                double best = KernelTiming.BestCpuSecondsPerPass(Pass, a.Reps, 1.5, 0.4);
                double perMac = best / macs;
                output.WriteLine($"| {shape.Name} | {format} | {perMac * layerMacs * 1e3:F2} | {1 / perMac / 1e9:F1} |");
            }
    }
}
