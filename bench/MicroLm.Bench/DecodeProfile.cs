using System.Diagnostics;
using System.Numerics;
using MicroLm.Cli;
using MicroLm.Gguf;
using MicroLm.Models;
using MicroLm.Tensors;
using MicroLm.Tensors.Quants;

namespace MicroLm.Bench;

/// <summary>Where decode time goes (--profile), without touching the runtime: (1) tg time per token through
/// the real Session; (2) the same token's matrix products replayed through the public WeightMatrix API in
/// forward order (so, as in decode, every weight streams from memory once per token), timed per kind, with
/// the Q8_0 quantization of activations (WeightMatrix.Prepare) timed apart; (3) the remainder, i.e.
/// attention, RMSNorm, RoPE, SiLU, residual adds, the finiteness checks and per-call overhead.
/// Also a one-thread read-bandwidth probe, the machine's rough limit for a memory-bound matmul.</summary>
internal static class DecodeProfile
{
    // ssm_in/ssm_out: Falcon-H1's Mamba2 projections (rows printed only for kinds the model has).
    private static readonly string[] Kinds = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "classifier", "ssm_in", "ssm_out"];

    public static void Run(BenchArgs a, TextWriter w)
    {
        double bandwidth = ReadBandwidth();
        w.WriteLine($"one-thread read bandwidth (Vector<float> sum over 512 MiB): {bandwidth:F1} GB/s");
        foreach (var shape in a.Shapes)
        foreach (var format in a.Formats)
        {
            string path = BenchModels.Ensure(shape, format, Console.Error);
            using var model = Model.Load(path);
            var c = model.Config;
            int n = a.Gen;
            var gen = BenchTokens.Generation(n, c.VocabSize, model.Tokenizer.BosId);

            using var session = model.CreateSession(contextLength: n, threads: 1, maxBatch: 1);
            var bench = new SessionBench(session);
            BenchTiming.WarmUp(() => bench.Generate(gen.AsSpan(0, System.Math.Min(16, n))));
            var tokenMs = new double[a.Reps];
            for (int r = 0; r < a.Reps; r++) tokenMs[r] = bench.Generate(gen) * 1000 / n;
            double total = Stats.Of(tokenMs).Mean;

            var replay = new Replay(model.File, c);
            BenchTiming.WarmUp(() => replay.Token(null));
            var perKind = new double[Kinds.Length + 1]; // + quantize
            for (int r = 0; r < a.Reps; r++)
                for (int t = 0; t < n; t++) replay.Token(perKind);
            for (int k = 0; k < perKind.Length; k++) perKind[k] = perKind[k] * 1000 / Stopwatch.Frequency / (a.Reps * n);

            w.WriteLine();
            w.WriteLine($"### {(shape.Family == "llama" ? "stories" : "")}{shape.Name} shape, {format}, 1 thread: {total:F3} ms per token ({1000 / total:F1} tok/s, tg{n}, positions 0–{n - 1})");
            w.WriteLine();
            w.WriteLine("| part | ms/token | share | weight MB/token | GB/s | GFLOP/s |");
            w.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: |");
            double matmul = 0;
            for (int k = 0; k < Kinds.Length; k++)
            {
                if (replay.Bytes[k] == 0) continue;
                double ms = perKind[k], mb = replay.Bytes[k] / 1e6, flop = 2.0 * replay.Macs[k];
                matmul += ms;
                w.WriteLine($"| {Kinds[k]} | {ms:F3} | {ms / total:P1} | {mb:F2} | {mb / ms:F1} | {flop / ms / 1e6:F2} |");
            }
            double q = perKind[Kinds.Length];
            double allMb = replay.Bytes.Sum() / 1e6, allFlop = 2.0 * replay.Macs.Sum();
            w.WriteLine($"| **all matmuls** | **{matmul:F3}** | **{matmul / total:P1}** | {allMb:F2} | {allMb / matmul:F1} | {allFlop / matmul / 1e6:F2} |");
            w.WriteLine($"| quantize activations (Q8_0) | {q:F3} | {q / total:P1} | | | |");
            double rest = total - matmul - q;
            string others = c.RecurrentStateBytes > 0 ? "attention, Mamba2 conv + scan, norms, RoPE, SiLU, adds, checks" : "attention, norms, RoPE, SiLU, adds, checks";
            w.WriteLine($"| {others} (remainder) | {rest:F3} | {rest / total:P1} | | | |");
        }
    }

    /// <summary>One token's matrix products in forward order, through the public WeightMatrix API.</summary>
    private sealed class Replay
    {
        private readonly (int Kind, WeightMatrix W, Activation[] X, float[] Y, bool Fresh)[] _steps;
        public readonly long[] Bytes = new long[Kinds.Length], Macs = new long[Kinds.Length];

        public Replay(GgufFile f, ModelConfig c)
        {
            var rng = new Random(1);
            Activation[] Act(int n)
            {
                var x = new Activation(n);
                for (int i = 0; i < n; i++) x.Values[i] = (float)(rng.NextDouble() * 2 - 1);
                return [x];
            }
            var normed = Act(c.Dim); var attn = Act(c.Heads * c.HeadDim); var hidden = Act(c.HiddenDim);
            Activation[]? gated = null;
            var steps = new List<(int, WeightMatrix, Activation[], float[], bool)>();
            void Add(string name, int kind, Activation[] x, bool fresh)
            {
                var t = f.FindTensor(name) ?? throw new InvalidOperationException("missing " + name);
                var m = new WeightMatrix(f, t);
                steps.Add((kind, m, x, new float[m.Rows], fresh));
                Bytes[kind] += (long)m.RowBytes * m.Rows;
                Macs[kind] += (long)m.Rows * m.Columns;
            }
            for (int l = 0; l < c.Layers; l++)
            {
                string p = $"blk.{l}.";
                Add(p + "attn_q.weight", 0, normed, true);
                Add(p + "attn_k.weight", 1, normed, false);
                Add(p + "attn_v.weight", 2, normed, false);
                Add(p + "attn_output.weight", 3, attn, true);
                if (f.FindTensor(p + "ssm_in.weight") is not null && f.FindTensor(p + "ssm_out.weight") is { } ssmOut)
                {
                    Add(p + "ssm_in.weight", 8, normed, false); // the same normed input as attention
                    Add(p + "ssm_out.weight", 9, gated ??= Act((int)ssmOut.Shape[0]), true);
                }
                Add(p + "ffn_gate.weight", 4, normed, true);
                Add(p + "ffn_up.weight", 5, normed, false);
                Add(p + "ffn_down.weight", 6, hidden, true);
            }
            Add(f.FindTensor("output.weight") != null ? "output.weight" : "token_embd.weight", 7, normed, true);
            _steps = [.. steps];
        }

        /// <summary>Adds Stopwatch ticks per kind (index Kinds.Length: activation quantization) if given.</summary>
        public void Token(double[]? ticks)
        {
            foreach (var (kind, w, x, y, fresh) in _steps)
            {
                long t0 = Stopwatch.GetTimestamp();
                if (fresh) x[0].Invalidate(); // a new activation, as the forward pass makes one
                WeightMatrix.PrepareOne(w, x);
                long t1 = Stopwatch.GetTimestamp();
                w.MatMul(x, 1, y, 0, w.Rows);
                long t2 = Stopwatch.GetTimestamp();
                if (ticks == null) continue;
                ticks[Kinds.Length] += t1 - t0;
                ticks[kind] += t2 - t1;
            }
        }
    }

    /// <summary>GB/s of a one-thread sequential read (sum of a 512 MiB float array, best of 3).</summary>
    private static double ReadBandwidth()
    {
        var data = new float[128 << 20];
        for (int i = 0; i < data.Length; i += 1024) data[i] = 1;
        double best = 0;
        float sink = 0;
        for (int r = 0; r < 4; r++)
        {
            long t0 = Stopwatch.GetTimestamp();
            var acc = Vector<float>.Zero;
            var v = System.Runtime.InteropServices.MemoryMarshal.Cast<float, Vector<float>>(data);
            for (int i = 0; i < v.Length; i += 4) acc += v[i] + v[i + 1] + v[i + 2] + v[i + 3];
            double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            sink += Vector.Sum(acc);
            if (r > 0) best = System.Math.Max(best, data.Length * 4.0 / s / 1e9);
        }
        GC.KeepAlive(sink);
        return best;
    }
}
