using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using MicroLm.Cli;
using MicroLm.Gguf;
using MicroLm.Math;
using MicroLm.Models;
using MicroLm.Tensors;
using MicroLm.Tensors.Quants;

namespace MicroLm.Bench;

/// <summary>What the determinism contract costs (--determinism-cost): the runtime's kernels against the
/// fastest variants written here without the contract (FMA, several accumulators, Vector512.Sum,
/// float-only polynomial exp), on the stories15M shape, warm, one thread. Also a rewrite that keeps the
/// contract's order exactly (checked bit for bit) but processes 4 rows per iteration, to tell what is
/// the promise's cost from what is just kernel engineering. Then the whole-token estimate from the
/// decode time, a forward-order replay of one token's matrix products, and the element-wise functions.
/// Everything non-deterministic lives in this file; the runtime is not touched.</summary>
internal static class DeterminismCost
{
    private const double TargetMs = 25; // one timed batch per variant and repetition

    public static void Run(BenchArgs a, TextWriter w)
    {
        if (!Vector512.IsHardwareAccelerated || !Avx512BW.IsSupported || !Fma.IsSupported)
            throw new ArgumentException("--determinism-cost needs AVX-512 (F, BW) and FMA: the non-deterministic variants are written for them");
        var shape = Shape.All[0];
        int reps = a.Reps;
        w.WriteLine($"# determinism cost: stories{shape.Name} shape, 1 thread, {reps} interleaved repetitions, median");
        w.WriteLine($"machine: {Machine.Cpu()}, {Environment.ProcessorCount} logical cores, {RuntimeInformation.FrameworkDescription} " +
                    $"({RuntimeInformation.ProcessArchitecture}, {BenchTiming.VectorDescription()}, {BenchTiming.JitDescription()})");
        var table = new List<string>
        {
            "| kernel | shape | deterministic µs | non-deterministic µs | ratio |",
            "| --- | --- | ---: | ---: | ---: |",
        };
        var contractTable = new List<string>
        {
            "| kernel | shape | runtime µs | same order, 4 rows/iteration µs | ratio | bits equal | non-det 4 rows / 1 row µs |",
            "| --- | --- | ---: | ---: | ---: | --- | ---: |",
        };
        var checks = new List<string>();
        var tokens = new List<(string Format, double Token, double ReplayDet, double ReplayContract, double ReplayNd)>();

        foreach (var format in new[] { GgmlType.F32, GgmlType.Q8_0 })
        {
            string path = BenchModels.Ensure(shape, format, Console.Error);
            using var model = Model.Load(path);
            var f = model.File;
            var c = model.Config;
            string classifier = f.FindTensor("output.weight") != null ? "output.weight" : "token_embd.weight";
            foreach (var (label, name) in new[] { ("attention q/k/v/o", "blk.0.attn_q.weight"), ("ffn gate/up", "blk.0.ffn_gate.weight"),
                                                  ("ffn down", "blk.0.ffn_down.weight"), ("classifier", classifier) })
            {
                var m = new Mat(f, name);
                var x = RandomActivation(m.W.Columns, 7);
                var xs = new[] { x };
                WeightMatrix.PrepareOne(m.W, xs);
                float[] yDet = new float[m.W.Rows], yCon = new float[m.W.Rows], yNd = new float[m.W.Rows], yNd1 = new float[m.W.Rows];
                bool f32 = format == GgmlType.F32;
                Action det = () => m.W.MatMul(xs, 1, yDet, 0, m.W.Rows);
                Action con = () => ContractFourRows(m, x, yCon);
                Action nd = f32 ? () => F32Fast(m, x, yNd) : () => Q8Fast(m, x, yNd);
                Action nd1 = f32 ? () => F32Fast1(m, x, yNd1) : () => Q8Fast1(m, x, yNd1);
                var t = Time(reps, det, con, nd, nd1);
                string kind = f32 ? "F32" : "Q8_0";
                string shapeText = $"{m.W.Rows}×{m.W.Columns}";
                bool four = t[2] <= t[3];
                double best = System.Math.Min(t[2], t[3]);
                string ndName = (f32 ? "FMA, Vector512.Sum, " : "Vector512 over 2 blocks, FMA, Vector512.Sum, ")
                    + (four ? (f32 ? "4 rows × 2 accumulators" : "4 rows") : (f32 ? "1 row × 4 accumulators" : "1 row × 2 accumulators"));
                table.Add($"| {kind} mat×vec, {label} ({ndName}) | {shapeText} | {t[0]:F1} | {best:F1} | {t[0] / best:F2} |");
                bool equal = yDet.AsSpan().SequenceEqual(yCon);
                contractTable.Add($"| {kind} mat×vec, {label} | {shapeText} | {t[0]:F1} | {t[1]:F1} | {t[0] / t[1]:F2} | {(equal ? "yes" : "**NO**")} | {t[2]:F1} / {t[3]:F1} |");
                checks.Add($"{kind} {shapeText}, 4 rows: " + CompareDots(m, x, yDet, yNd));
                checks.Add($"{kind} {shapeText}, 1 row: " + CompareDots(m, x, yDet, yNd1));
                Console.Error.WriteLine($"  {kind} {shapeText}: {string.Join(" / ", t.Select(v => v.ToString("F1")))} µs");
            }

            // Whole token: decode time through Session, and one token's matmuls replayed in forward order
            // (every weight streams from memory once, as in decode) with each kernel.
            int n = a.Gen;
            var gen = BenchTokens.Generation(n, c.VocabSize, model.Tokenizer.BosId);
            using var session = model.CreateSession(contextLength: n, threads: 1, maxBatch: 1);
            var bench = new SessionBench(session);
            BenchTiming.WarmUp(() => bench.Generate(gen.AsSpan(0, System.Math.Min(16, n))));
            var replay = new Replay(f, c);
            var tokenMs = new double[reps];
            var replayUs = Time(reps, () => replay.Token(Kernel.Runtime), () => replay.Token(Kernel.Contract),
                () => replay.Token(Kernel.Fast), () => replay.Token(Kernel.Fast1));
            for (int r = 0; r < reps; r++) tokenMs[r] = bench.Generate(gen) * 1000 / n;
            Console.Error.WriteLine($"  {format} token replay: {string.Join(" / ", replayUs.Select(v => (v / 1000).ToString("F3")))} ms; decode {KernelTiming.Median(tokenMs):F3} ms");
            tokens.Add((format.ToString(), KernelTiming.Median(tokenMs), replayUs[0] / 1000, replayUs[1] / 1000, System.Math.Min(replayUs[2], replayUs[3]) / 1000));
        }

        // Element-wise functions on the forward pass's sizes (and the sampler's 32000).
        var elem = new Dictionary<string, double[]>();
        void Elementwise(string name, string shapeText, Action det, params (string Name, Action Run)[] others)
        {
            var t = Time(reps, [det, .. others.Select(o => o.Run)]);
            elem[name] = t;
            for (int i = 0; i < others.Length; i++)
                table.Add($"| {name} ({others[i].Name}) | {shapeText} | {t[0]:F2} | {t[i + 1]:F2} | {t[0] / t[i + 1]:F2} |");
            Console.Error.WriteLine($"  {name}: {string.Join(" / ", t.Select(v => v.ToString("F2")))} µs");
        }
        var rng = new Random(3);
        float[] Uniform(int len, float lo, float hi) => Enumerable.Range(0, len).Select(_ => lo + (float)rng.NextDouble() * (hi - lo)).ToArray();

        var siluIn = Uniform(768, -8, 8);
        var siluOut = new float[768];
        Elementwise("SiLU span", "768", () => DetMath.Silu(siluIn, siluOut),
            ("MathF.Exp loop", () => SiluMathF(siluIn, siluOut)), ("Vector512 FMA polynomial", () => SiluFast(siluIn, siluOut)));
        checks.Add("SiLU 768: " + CompareElementwise(siluIn, (x, y) => DetMath.Silu(x, y), SiluMathF, SiluFast));

        foreach (int len in new[] { 64, 256, 32000 })
        {
            var input = Uniform(len, -10, 10);
            var buf = new float[len];
            string name = len == 32000 ? "softmax (sampler, vocabulary)" : $"softmax (attention row, {len} positions)";
            Elementwise(name, len.ToString(), () => { input.CopyTo(buf, 0); DetMath.SoftmaxInPlace(buf); },
                ("MathF.Exp loop, sequential sum", () => { input.CopyTo(buf, 0); SoftmaxMathF(buf); }),
                ("Vector512 FMA polynomial, Vector512.Sum", () => { input.CopyTo(buf, 0); SoftmaxFast(buf); }));
            checks.Add($"softmax {len}: " + CompareElementwise(input, InPlace(y => DetMath.SoftmaxInPlace(y)), InPlace(SoftmaxMathF), InPlace(SoftmaxFast), SoftmaxTolerance));
        }

        var expIn = Uniform(32000, -20, 0);
        var expOut = new float[32000];
        Elementwise("exp span", "32000", () => DetMath.Exp(expIn, expOut),
            ("MathF.Exp loop", () => ExpMathF(expIn, expOut)), ("Vector512 FMA polynomial", () => ExpFast(expIn, expOut)),
            ("Vector512.Exp (.NET)", () => ExpDotnet(expIn, expOut)));
        checks.Add("exp 32000: " + CompareElementwise(expIn, (x, y) => DetMath.Exp(x, y), ExpMathF, ExpFast));

        w.WriteLine();
        foreach (var row in table) w.WriteLine(row);
        w.WriteLine();
        w.WriteLine("Contract order kept, 4 rows per iteration (what a faster deterministic kernel could reach):");
        w.WriteLine();
        foreach (var row in contractTable) w.WriteLine(row);
        w.WriteLine();
        w.WriteLine("Checks (non-deterministic against the runtime, and both against a double-precision reference):");
        foreach (var line in checks) w.WriteLine("- " + line);

        // Per token: decode time minus what the faster kernels save in the matmuls (replay) and in the
        // element-wise work of one token (6 layers: one 768-wide SiLU, 6 heads' softmax over ~pos+1 scores;
        // tg128 averages 64.5 positions, so the 64-row timing stands for it).
        int layers = shape.Layers, heads = shape.Heads;
        double elemSaveUs(int k) => layers * (elem["SiLU span"][0] - elem["SiLU span"][k])
                                  + layers * heads * (elem["softmax (attention row, 64 positions)"][0] - elem["softmax (attention row, 64 positions)"][k]);
        double elemSave = elemSaveUs(2) / 1000; // the FMA polynomial variants
        w.WriteLine();
        w.WriteLine("| format | decode ms/token | matmul replay ms: runtime / same order 4 rows / non-det (faster of 4 rows, 1 row) | element-wise saving ms | est. non-det ms/token | faster without the contract | of which matmul |");
        w.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var (fmt, token, rdet, rcon, rnd) in tokens)
        {
            double matSave = rdet - rnd, est = token - matSave - elemSave;
            w.WriteLine($"| {fmt} | {token:F3} | {rdet:F3} / {rcon:F3} / {rnd:F3} | {elemSave:F3} | {est:F3} | {token / est - 1:P1} | {matSave / (matSave + elemSave):P0} |");
            double conEst = token - (rdet - rcon);
            w.WriteLine($"|  ↳ {fmt}, contract kept, 4 rows/iteration matmuls | | | | {conEst:F3} | {token / conEst - 1:P1} | |");
        }
        double samplerSave = (elem["exp span"][0] - elem["exp span"][2]) / 1000;
        w.WriteLine();
        w.WriteLine($"Sampling with temperature over the whole vocabulary adds one 32000-wide exp per token: {elem["exp span"][0] / 1000:F3} ms deterministic, " +
                    $"{elem["exp span"][2] / 1000:F3} ms with the FMA polynomial ({samplerSave:F3} ms per token; not in the decode times above, which do not sample).");
    }

    // ------------------------------------------------------------------ timing

    /// <summary>Median µs per call of each action: warmed up (tier 1), then reps rounds, each timing every action
    /// in turn for ~25 ms (interleaved, so a burst of load hits all of them).</summary>
    private static double[] Time(int reps, params Action[] actions)
    {
        var iters = new int[actions.Length];
        for (int k = 0; k < actions.Length; k++)
        {
            BenchTiming.WarmUp(actions[k]);
            long t0 = Stopwatch.GetTimestamp();
            int calls = 0;
            do { actions[k](); calls++; } while (Stopwatch.GetElapsedTime(t0).TotalMilliseconds < 5);
            iters[k] = System.Math.Max(1, (int)(calls * TargetMs / Stopwatch.GetElapsedTime(t0).TotalMilliseconds));
        }
        var samples = new double[actions.Length][];
        for (int k = 0; k < actions.Length; k++) samples[k] = new double[reps];
        for (int r = 0; r < reps; r++)
            for (int k = 0; k < actions.Length; k++)
            {
                long t0 = Stopwatch.GetTimestamp();
                for (int i = 0; i < iters[k]; i++) actions[k]();
                samples[k][r] = Stopwatch.GetElapsedTime(t0).TotalMicroseconds / iters[k];
            }
        return samples.Select(KernelTiming.Median).ToArray();
    }

    private static Activation RandomActivation(int n, int seed)
    {
        var rng = new Random(seed);
        var x = new Activation(n);
        for (int i = 0; i < n; i++) x.Values[i] = (float)(rng.NextDouble() * 2 - 1);
        return x;
    }

    // ------------------------------------------------------------------ checks

    /// <summary>ulps between two floats of the same sign (the order-preserving integer distance).</summary>
    private static long Ulps(float a, float b)
    {
        static long Key(float v) { int i = BitConverter.SingleToInt32Bits(v); return i < 0 ? int.MinValue - (long)i : i; }
        return System.Math.Abs(Key(a) - Key(b));
    }

    /// <summary>Tolerance for a dot product: |y − exact| ≤ 1e-5 · Σ|wᵢxᵢ| (float rounding of n ≤ 768 terms
    /// is bounded by about n·2⁻²⁴·Σ|wᵢxᵢ| ≈ 4.6e-5 in the worst case, far less in practice).</summary>
    private const double DotTolerance = 1e-5;

    private static string CompareDots(Mat m, Activation x, float[] det, float[] nd)
    {
        int rows = m.W.Rows, cols = m.W.Columns;
        var row = new float[cols];
        double worstDet = 0, worstNd = 0;
        int differ = 0;
        long maxUlps = 0;
        var ulps = new List<long>();
        bool q8 = m.W.Type.Type == GgmlType.Q8_0;
        for (int r = 0; r < rows; r++)
        {
            m.W.ReadRow(r, row);
            double exact = 0, mag = 0;
            for (int i = 0; i < cols; i++)
            {
                // Q8_0 multiplies by the activation's Q8_0 form: the exact value of what both kernels compute.
                double xv = q8 ? x.Q8[i] * (double)x.Q8Scales[i / 32] : x.Values[i];
                exact += row[i] * xv;
                mag += System.Math.Abs(row[i] * xv);
            }
            worstDet = System.Math.Max(worstDet, System.Math.Abs(det[r] - exact) / mag);
            worstNd = System.Math.Max(worstNd, System.Math.Abs(nd[r] - exact) / mag);
            if (det[r] != nd[r]) { differ++; long u = Ulps(det[r], nd[r]); ulps.Add(u); maxUlps = System.Math.Max(maxUlps, u); }
        }
        if (worstNd > DotTolerance || worstDet > DotTolerance)
            throw new InvalidOperationException($"{m.W.Name}: error against the double reference beyond {DotTolerance} (runtime {worstDet:E2}, non-det {worstNd:E2})");
        ulps.Sort();
        return $"non-det differs from the runtime in {differ}/{rows} outputs ({(double)differ / rows:P0}), " +
               $"median {(ulps.Count > 0 ? ulps[ulps.Count / 2] : 0)} ulp, max {maxUlps} ulp; " +
               $"max |error|/Σ|w·x| against double: runtime {worstDet:E1}, non-det {worstNd:E1} (tolerance {DotTolerance:E0})";
    }

    /// <summary>Elementwise tolerance: relative 1e-5 (a few float ulps; the polynomial exp is within ~2 ulp); softmax
    /// 1e-4, since its float sum of up to 32000 terms (sequential in the MathF variant) adds n·2⁻²⁴-sized error.</summary>
    private const double ElementTolerance = 1e-5, SoftmaxTolerance = 1e-4;

    private static string CompareElementwise(float[] input, Action<float[], float[]> det, Action<float[], float[]> mathF, Action<float[], float[]> fast,
        double tolerance = ElementTolerance)
    {
        int n = input.Length;
        float[] yd = new float[n], ym = new float[n], yf = new float[n];
        det(input, yd); mathF(input, ym); fast(input, yf);
        string Stat(float[] y, string name)
        {
            int differ = 0; long max = 0; double rel = 0;
            for (int i = 0; i < n; i++)
            {
                if (y[i] != yd[i]) { differ++; max = System.Math.Max(max, Ulps(y[i], yd[i])); }
                if (yd[i] != 0) rel = System.Math.Max(rel, System.Math.Abs((double)y[i] - yd[i]) / System.Math.Abs(yd[i]));
            }
            if (rel > tolerance) throw new InvalidOperationException($"{name}: relative error {rel:E2} beyond {tolerance}");
            return $"{name} differs in {differ}/{n} ({(double)differ / n:P0}), max {max} ulp, max relative {rel:E1}";
        }
        return Stat(ym, "MathF") + "; " + Stat(yf, "FMA polynomial") + $" (relative tolerance {tolerance:E0}; the runtime's functions are correctly rounded)";
    }

    private static Action<float[], float[]> InPlace(Action<float[]> f) => (x, y) => { x.CopyTo(y, 0); f(y); };

    // ------------------------------------------------------------------ matrices

    private sealed class Mat
    {
        public readonly WeightMatrix W;
        public readonly ReadOnlyMemory<byte> Data;

        public Mat(GgufFile f, string name)
        {
            var t = f.FindTensor(name) ?? throw new InvalidOperationException("missing " + name);
            W = new WeightMatrix(f, t);
            Data = f.GetTensorData(t);
            if (W.Columns % 32 != 0) throw new InvalidOperationException($"{name}: the bench kernels want a multiple of 32 columns");
        }
    }

    private enum Kernel { Runtime, Contract, Fast, Fast1 }

    /// <summary>One token's matrix products in forward order (as DecodeProfile), with a choice of kernel.</summary>
    private sealed class Replay
    {
        private readonly (Mat M, Activation X, float[] Y, bool Fresh)[] _steps;

        public Replay(GgufFile f, ModelConfig c)
        {
            var normed = RandomActivation(c.Dim, 1); var attn = RandomActivation(c.Heads * c.HeadDim, 2); var hidden = RandomActivation(c.HiddenDim, 3);
            var steps = new List<(Mat, Activation, float[], bool)>();
            void Add(string name, Activation x, bool fresh) { var m = new Mat(f, name); steps.Add((m, x, new float[m.W.Rows], fresh)); }
            for (int l = 0; l < c.Layers; l++)
            {
                string p = $"blk.{l}.";
                Add(p + "attn_q.weight", normed, true); Add(p + "attn_k.weight", normed, false); Add(p + "attn_v.weight", normed, false);
                Add(p + "attn_output.weight", attn, true);
                Add(p + "ffn_gate.weight", normed, true); Add(p + "ffn_up.weight", normed, false);
                Add(p + "ffn_down.weight", hidden, true);
            }
            Add(f.FindTensor("output.weight") != null ? "output.weight" : "token_embd.weight", normed, true);
            _steps = [.. steps];
        }

        public float Token(Kernel k)
        {
            float sink = 0;
            var one = new Activation[1];
            foreach (var (m, x, y, fresh) in _steps)
            {
                if (fresh) x.Invalidate();
                one[0] = x;
                WeightMatrix.PrepareOne(m.W, one);
                bool f32 = m.W.Type.Type == GgmlType.F32;
                switch (k)
                {
                    case Kernel.Runtime: m.W.MatMul(one, 1, y, 0, m.W.Rows); break;
                    case Kernel.Contract: ContractFourRows(m, x, y); break;
                    case Kernel.Fast: if (f32) F32Fast(m, x, y); else Q8Fast(m, x, y); break;
                    default: if (f32) F32Fast1(m, x, y); else Q8Fast1(m, x, y); break;
                }
                sink += y[0];
            }
            return sink;
        }
    }

    // ------------------------------------------------------------------ F32 kernels

    /// <summary>The contract's order kept, 4 rows per iteration: the runtime's own four-row kernels
    /// (<see cref="RowKernel.Dot4Rows"/>, one activation load for four rows; for F32, whose decode walks four rows a
    /// quarter of the range apart instead, the base class's four Dots), used here on every matrix whatever the runtime
    /// would choose for it, and checked bit for bit against <see cref="Kernel.Runtime"/>.</summary>
    private static void ContractFourRows(Mat m, Activation x, Span<float> y)
    {
        var kernel = m.W.Type.Kernel!;
        var data = m.Data.Span;
        int rows = m.W.Rows, rowBytes = m.W.RowBytes, r = 0;
        for (; r + 4 <= rows; r += 4) kernel.Dot4Rows(data.Slice(r * rowBytes, 4 * rowBytes), rowBytes, x, y.Slice(r, 4));
        for (; r < rows; r++) y[r] = kernel.Dot(data.Slice(r * rowBytes, rowBytes), x);
    }

    /// <summary>Without the contract: fused multiply-add, 4 rows × 2 independent accumulators (32 columns per
    /// step), Vector512.Sum (whatever order the JIT's horizontal add uses) — what one writes for speed.</summary>
    private static void F32Fast(Mat m, Activation x, Span<float> y)
    {
        int rows = m.W.Rows, cols = m.W.Columns;
        ref float pw = ref Unsafe.As<byte, float>(ref MemoryMarshal.GetReference(m.Data.Span));
        ref float px = ref MemoryMarshal.GetReference(x.Values);
        int r = 0;
        for (; r + 4 <= rows; r += 4)
        {
            ref float w0 = ref Unsafe.Add(ref pw, (nint)r * cols);
            ref float w1 = ref Unsafe.Add(ref w0, cols);
            ref float w2 = ref Unsafe.Add(ref w1, cols);
            ref float w3 = ref Unsafe.Add(ref w2, cols);
            Vector512<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
            for (int i = 0; i < cols; i += 32)
            {
                var x0 = Vector512.LoadUnsafe(ref px, (nuint)i);
                var x1 = Vector512.LoadUnsafe(ref px, (nuint)i + 16);
                a0 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref w0, (nuint)i), x0, a0);
                b0 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref w0, (nuint)i + 16), x1, b0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref w1, (nuint)i), x0, a1);
                b1 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref w1, (nuint)i + 16), x1, b1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref w2, (nuint)i), x0, a2);
                b2 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref w2, (nuint)i + 16), x1, b2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref w3, (nuint)i), x0, a3);
                b3 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref w3, (nuint)i + 16), x1, b3);
            }
            y[r] = Vector512.Sum(a0 + b0); y[r + 1] = Vector512.Sum(a1 + b1);
            y[r + 2] = Vector512.Sum(a2 + b2); y[r + 3] = Vector512.Sum(a3 + b3);
        }
        for (; r < rows; r++)
        {
            ref float w0 = ref Unsafe.Add(ref pw, (nint)r * cols);
            Vector512<float> a0 = default, b0 = default;
            for (int i = 0; i < cols; i += 32)
            {
                a0 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref w0, (nuint)i), Vector512.LoadUnsafe(ref px, (nuint)i), a0);
                b0 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref w0, (nuint)i + 16), Vector512.LoadUnsafe(ref px, (nuint)i + 16), b0);
            }
            y[r] = Vector512.Sum(a0 + b0);
        }
    }

    /// <summary>One row at a time (one sequential stream through memory), FMA, 4 accumulators, Vector512.Sum.</summary>
    private static void F32Fast1(Mat m, Activation x, Span<float> y)
    {
        int rows = m.W.Rows, cols = m.W.Columns;
        ref float pw = ref Unsafe.As<byte, float>(ref MemoryMarshal.GetReference(m.Data.Span));
        ref float px = ref MemoryMarshal.GetReference(x.Values);
        for (int r = 0; r < rows; r++)
        {
            ref float w0 = ref Unsafe.Add(ref pw, (nint)r * cols);
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            int i = 0;
            for (; i + 64 <= cols; i += 64)
            {
                a0 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref w0, (nuint)i), Vector512.LoadUnsafe(ref px, (nuint)i), a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref w0, (nuint)i + 16), Vector512.LoadUnsafe(ref px, (nuint)i + 16), a1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref w0, (nuint)i + 32), Vector512.LoadUnsafe(ref px, (nuint)i + 32), a2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref w0, (nuint)i + 48), Vector512.LoadUnsafe(ref px, (nuint)i + 48), a3);
            }
            for (; i < cols; i += 16)
                a0 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref w0, (nuint)i), Vector512.LoadUnsafe(ref px, (nuint)i), a0);
            y[r] = Vector512.Sum((a0 + a1) + (a2 + a3));
        }
    }

    // ------------------------------------------------------------------ Q8_0 kernels

    private static readonly float[] HalfTable = BuildHalfTable();

    private static float[] BuildHalfTable()
    {
        var t = new float[65536];
        for (int i = 0; i < t.Length; i++) t[i] = (float)BitConverter.UInt16BitsToHalf((ushort)i);
        return t;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Half(ref byte b) => Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(HalfTable), Unsafe.ReadUnaligned<ushort>(ref b));

    /// <summary>8 sums of 4 consecutive products of 32 signed bytes (exact; the AVX2 sign trick as the runtime's path).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Groups256(Vector256<sbyte> w, Vector256<sbyte> x) =>
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w), Avx2.Sign(x, w)), Vector256<short>.One);

    /// <summary>The same for 64 bytes (two blocks): AVX-512BW has no psignb, so x is negated where w &lt; 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Groups512(Vector512<sbyte> w, Vector512<sbyte> x)
    {
        var signed = Vector512.ConditionalSelect(Vector512.LessThan(w, Vector512<sbyte>.Zero), -x, x);
        return Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(Vector512.Abs(w).AsByte(), signed), Vector512<short>.One);
    }

    /// <summary>Without the contract, as llama.cpp's AVX-512 path: two blocks per Vector512 (so lane j of block b and
    /// lane j of block b+1 are different lanes: the order depends on the width), FMA with the block scales, 4 rows
    /// per iteration, Vector512.Sum at the end. An odd last block goes through a Vector256 FMA.</summary>
    private static void Q8Fast(Mat m, Activation x, Span<float> y)
    {
        int rows = m.W.Rows, blocks = m.W.Columns / 32, rowBytes = m.W.RowBytes, pairs = blocks & ~1;
        ref byte pw = ref MemoryMarshal.GetReference(m.Data.Span);
        ref sbyte q = ref MemoryMarshal.GetReference(x.Q8);
        ref float sc = ref MemoryMarshal.GetArrayDataReference(x.Q8Scales);
        int r = 0;
        for (; r + 4 <= rows; r += 4)
        {
            ref byte r0 = ref Unsafe.Add(ref pw, (nint)r * rowBytes);
            ref byte r1 = ref Unsafe.Add(ref r0, rowBytes);
            ref byte r2 = ref Unsafe.Add(ref r1, rowBytes);
            ref byte r3 = ref Unsafe.Add(ref r2, rowBytes);
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            int b = 0;
            for (; b < pairs; b += 2)
            {
                var xv = Vector512.LoadUnsafe(ref Unsafe.Add(ref q, b * 32));
                var sx = Pair(Unsafe.Add(ref sc, b), Unsafe.Add(ref sc, b + 1));
                a0 = Q8Pair(ref Unsafe.Add(ref r0, b * 34), xv, sx, a0);
                a1 = Q8Pair(ref Unsafe.Add(ref r1, b * 34), xv, sx, a1);
                a2 = Q8Pair(ref Unsafe.Add(ref r2, b * 34), xv, sx, a2);
                a3 = Q8Pair(ref Unsafe.Add(ref r3, b * 34), xv, sx, a3);
            }
            if (b < blocks)
            {
                var xv = Vector256.LoadUnsafe(ref Unsafe.Add(ref q, b * 32));
                float s = Unsafe.Add(ref sc, b);
                a0 += (Q8Odd(ref Unsafe.Add(ref r0, b * 34), xv, s).ToVector512());
                a1 += (Q8Odd(ref Unsafe.Add(ref r1, b * 34), xv, s).ToVector512());
                a2 += (Q8Odd(ref Unsafe.Add(ref r2, b * 34), xv, s).ToVector512());
                a3 += (Q8Odd(ref Unsafe.Add(ref r3, b * 34), xv, s).ToVector512());
            }
            y[r] = Vector512.Sum(a0); y[r + 1] = Vector512.Sum(a1); y[r + 2] = Vector512.Sum(a2); y[r + 3] = Vector512.Sum(a3);
        }
        for (; r < rows; r++)
        {
            ref byte r0 = ref Unsafe.Add(ref pw, (nint)r * rowBytes);
            Vector512<float> a0 = default;
            int b = 0;
            for (; b < pairs; b += 2)
                a0 = Q8Pair(ref Unsafe.Add(ref r0, b * 34), Vector512.LoadUnsafe(ref Unsafe.Add(ref q, b * 32)),
                    Pair(Unsafe.Add(ref sc, b), Unsafe.Add(ref sc, b + 1)), a0);
            if (b < blocks)
                a0 += (Q8Odd(ref Unsafe.Add(ref r0, b * 34), Vector256.LoadUnsafe(ref Unsafe.Add(ref q, b * 32)), Unsafe.Add(ref sc, b)).ToVector512());
            y[r] = Vector512.Sum(a0);
        }
    }

    /// <summary>(a ×8, b ×8) by a blend of two broadcasts.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Pair(float a, float b) =>
        Vector512.ConditionalSelect(Vector512.Create(0, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1).AsSingle(), Vector512.Create(b), Vector512.Create(a));

    /// <summary>One row at a time (one sequential stream through memory), else as <see cref="Q8Fast"/>.</summary>
    private static void Q8Fast1(Mat m, Activation x, Span<float> y)
    {
        int rows = m.W.Rows, blocks = m.W.Columns / 32, rowBytes = m.W.RowBytes, pairs = blocks & ~1;
        ref byte pw = ref MemoryMarshal.GetReference(m.Data.Span);
        ref sbyte q = ref MemoryMarshal.GetReference(x.Q8);
        ref float sc = ref MemoryMarshal.GetArrayDataReference(x.Q8Scales);
        for (int r = 0; r < rows; r++)
        {
            ref byte r0 = ref Unsafe.Add(ref pw, (nint)r * rowBytes);
            Vector512<float> a0 = default, a1 = default;
            int b = 0;
            for (; b + 4 <= pairs; b += 4)
            {
                a0 = Q8Pair(ref Unsafe.Add(ref r0, b * 34), Vector512.LoadUnsafe(ref Unsafe.Add(ref q, b * 32)), Pair(Unsafe.Add(ref sc, b), Unsafe.Add(ref sc, b + 1)), a0);
                a1 = Q8Pair(ref Unsafe.Add(ref r0, (b + 2) * 34), Vector512.LoadUnsafe(ref Unsafe.Add(ref q, (b + 2) * 32)), Pair(Unsafe.Add(ref sc, b + 2), Unsafe.Add(ref sc, b + 3)), a1);
            }
            for (; b < pairs; b += 2)
                a0 = Q8Pair(ref Unsafe.Add(ref r0, b * 34), Vector512.LoadUnsafe(ref Unsafe.Add(ref q, b * 32)), Pair(Unsafe.Add(ref sc, b), Unsafe.Add(ref sc, b + 1)), a0);
            if (b < blocks)
                a1 += Q8Odd(ref Unsafe.Add(ref r0, b * 34), Vector256.LoadUnsafe(ref Unsafe.Add(ref q, b * 32)), Unsafe.Add(ref sc, b)).ToVector512();
            y[r] = Vector512.Sum(a0 + a1);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Q8Pair(ref byte block, Vector512<sbyte> xv, Vector512<float> sx, Vector512<float> acc)
    {
        ref sbyte w = ref Unsafe.As<byte, sbyte>(ref block);
        var wv = Vector256.LoadUnsafe(ref Unsafe.Add(ref w, 2)).ToVector512Unsafe().WithUpper(Vector256.LoadUnsafe(ref Unsafe.Add(ref w, 36)));
        var d = Pair(Half(ref block), Half(ref Unsafe.Add(ref block, 34)));
        return Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Groups512(wv, xv)), d * sx, acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Q8Odd(ref byte block, Vector256<sbyte> xv, float sx) =>
        Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Groups256(Vector256.LoadUnsafe(ref Unsafe.As<byte, sbyte>(ref Unsafe.Add(ref block, 2))), xv)),
            Vector256.Create(Half(ref block) * sx), Vector256<float>.Zero);

    // ------------------------------------------------------------------ element-wise, without the contract

    private static void ExpMathF(float[] x, float[] y)
    {
        for (int i = 0; i < x.Length; i++) y[i] = MathF.Exp(x[i]);
    }

    private static void ExpDotnet(float[] x, float[] y)
    {
        int i = 0;
        for (; i + 16 <= x.Length; i += 16) Vector512.Exp(Vector512.Create(x.AsSpan(i))).CopyTo(y.AsSpan(i));
        for (; i < x.Length; i++) y[i] = MathF.Exp(x[i]);
    }

    private static void ExpFast(float[] x, float[] y)
    {
        int i = 0;
        for (; i + 16 <= x.Length; i += 16) FastExp(Vector512.Create(x.AsSpan(i))).CopyTo(y.AsSpan(i));
        for (; i < x.Length; i++) y[i] = MathF.Exp(x[i]);
    }

    private static void SiluMathF(float[] x, float[] y)
    {
        for (int i = 0; i < x.Length; i++) y[i] = x[i] / (1f + MathF.Exp(-x[i]));
    }

    private static void SiluFast(float[] x, float[] y)
    {
        int i = 0;
        for (; i + 16 <= x.Length; i += 16)
        {
            var v = Vector512.Create(x.AsSpan(i));
            (v / (Vector512<float>.One + FastExp(-v))).CopyTo(y.AsSpan(i));
        }
        for (; i < x.Length; i++) y[i] = x[i] / (1f + MathF.Exp(-x[i]));
    }

    private static void SoftmaxMathF(float[] x)
    {
        float max = float.NegativeInfinity;
        foreach (float v in x) max = MathF.Max(max, v);
        float sum = 0;
        for (int i = 0; i < x.Length; i++) { x[i] = MathF.Exp(x[i] - max); sum += x[i]; }
        float inv = 1f / sum;
        for (int i = 0; i < x.Length; i++) x[i] *= inv;
    }

    private static void SoftmaxFast(float[] x)
    {
        int n = x.Length, full = n & ~15, i;
        var vmax = Vector512.Create(float.NegativeInfinity);
        for (i = 0; i < full; i += 16) vmax = Vector512.Max(vmax, Vector512.Create(x.AsSpan(i)));
        float max = float.NegativeInfinity;
        for (int j = 0; j < 16; j++) max = MathF.Max(max, vmax[j]);
        for (; i < n; i++) max = MathF.Max(max, x[i]);
        var m = Vector512.Create(max);
        var vs = Vector512<float>.Zero;
        for (i = 0; i < full; i += 16)
        {
            var e = FastExp(Vector512.Create(x.AsSpan(i)) - m);
            e.CopyTo(x.AsSpan(i));
            vs += e;
        }
        float sum = Vector512.Sum(vs);
        for (; i < n; i++) { x[i] = MathF.Exp(x[i] - max); sum += x[i]; }
        var inv = Vector512.Create(1f / sum);
        for (i = 0; i < full; i += 16) (Vector512.Create(x.AsSpan(i)) * inv).CopyTo(x.AsSpan(i));
        for (; i < n; i++) x[i] *= inv[0];
    }

    /// <summary>e^x in float only (Cephes expf's polynomial): n = round(x·log2 e), r = x − n·ln 2 in two FMA
    /// steps, degree-6 polynomial by FMA (Horner), times 2^n by exponent bits. Within ~2 ulp for x in [−87, 88].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> FastExp(Vector512<float> x)
    {
        x = Vector512.Min(Vector512.Max(x, Vector512.Create(-87.0f)), Vector512.Create(88.0f));
        var n = Vector512.Round(x * Vector512.Create(1.44269504088896341f));
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-0.693359375f), x);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(2.12194440e-4f), r);
        var p = Vector512.Create(1.9875691500E-4f);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.3981999507E-3f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(8.3334519073E-3f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(4.1665795894E-2f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.6666665459E-1f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(5.0000001201E-1f));
        p = Vector512.FusedMultiplyAdd(p, r * r, r + Vector512<float>.One);
        var scale = Vector512.ShiftLeft(Vector512.ConvertToInt32(n) + Vector512.Create(127), 23).AsSingle();
        return p * scale;
    }
}
