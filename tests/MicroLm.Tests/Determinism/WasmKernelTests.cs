using System.Runtime.InteropServices;
using MicroLm.Math;
using MicroLm.Tensors;
using MicroLm.Tensors.Quants;
using MicroLm.Tensors.Wasm;
using Wasmtime;

namespace MicroLm.Tests.Determinism;

/// <summary>Runs every WebAssembly kernel the runtime emits under a second engine (Wasmtime, natively, with
/// NaN canonicalization on) and compares each output's bits with the C# kernel's <see cref="RowKernel.Dot"/>.
/// One exception, stated: where both results are NaN they count as equal, because WebAssembly leaves a
/// NaN's sign and payload unspecified (and the runtime stops on any NaN in a hidden state or logit, so a
/// payload never reaches a trace).</summary>
[Collection("Global kernel switches")]
public sealed class WasmKernelTests
{
    /// <summary>A Wasmtime instance of a kernel module with its own memory, laid out as the browser lays
    /// out the .NET heap: weights, activations, the token table and the output at addresses it passes.</summary>
    private sealed class Harness : IDisposable
    {
        private readonly Engine _engine;
        private readonly Store _store;
        private readonly Memory _memory;
        private readonly Instance _instance;

        public Harness(byte[] module)
        {
            _engine = new Engine(new Config().WithSIMD(true).WithRelaxedSIMD(false, false).WithCraneliftNaNCanonicalization(true));
            _store = new Store(_engine);
            _memory = new Memory(_store, 512); // 32 MB
            using var m = Module.FromBytes(_engine, "microlm-kernels", module);
            using var linker = new Linker(_engine);
            linker.Define("env", "memory", _memory);
            _instance = linker.Instantiate(_store, m);
        }

        /// <summary>out[t·rows + r] for every row and token, computed by the module's function for <paramref name="type"/>.</summary>
        public float[] MatMul(GgmlType type, byte[] weights, int rows, int columns, Activation[] xs)
        {
            var info = TensorTypes.Get(type);
            bool q8 = info.Kernel!.UsesQ8Activation, q8k = info.Kernel.UsesQ8KActivation;
            long at = 8;
            long Place(ReadOnlySpan<byte> bytes, int misalign = 0)
            {
                at = (at + 15) / 16 * 16 + misalign;
                long address = at;
                bytes.CopyTo(_memory.GetSpan(address, bytes.Length));
                at += bytes.Length;
                return address;
            }
            // Weights at an odd address: wasm loads need no alignment, and the .NET heap gives none.
            long w = Place(weights, 2);
            var table = new int[2 * xs.Length];
            for (int t = 0; t < xs.Length; t++)
            {
                if (q8k)
                {
                    // the Q8_K form: quants, and its Blocks buffer (d per super-block, then the per-16 sums)
                    table[2 * t] = (int)Place(MemoryMarshal.AsBytes(xs[t].Q8K!.Q.AsSpan()));
                    table[2 * t + 1] = (int)Place(MemoryMarshal.AsBytes(xs[t].Q8K!.Blocks.AsSpan()), 4);
                    continue;
                }
                table[2 * t] = (int)(q8 ? Place(MemoryMarshal.AsBytes(xs[t].Q8)) : Place(MemoryMarshal.AsBytes(xs[t].Values[..columns])));
                table[2 * t + 1] = q8 ? (int)Place(MemoryMarshal.AsBytes(xs[t].Q8Scales.AsSpan())) : 0;
            }
            long tableAt = Place(MemoryMarshal.AsBytes(table.AsSpan()));
            long output = Place(new byte[4 * rows * xs.Length]);
            var f = _instance.GetFunction(info.Name) ?? throw new InvalidOperationException($"no export {info.Name}");
            f.Invoke((int)w, (int)info.RowBytes(columns), rows, columns, (int)tableAt, xs.Length, (int)output, rows);
            return MemoryMarshal.Cast<byte, float>(_memory.GetSpan(output, 4 * rows * xs.Length)).ToArray();
        }

        /// <summary>The module's attention export on one head: returns (scores, output).</summary>
        public (float[] Scores, float[] Output) Attention(float[] q, float[] keys, float[] values, int count, int hd, float scale)
        {
            long at = 8;
            long Place(ReadOnlySpan<float> data)
            {
                at = (at + 15) / 16 * 16 + 4; // 4-byte aligned only, as the .NET heap may give
                long address = at;
                MemoryMarshal.AsBytes(data).CopyTo(_memory.GetSpan(address, 4 * data.Length));
                at += 4 * data.Length;
                return address;
            }
            long pq = Place(q), pk = Place(keys), pv = Place(values), ps = Place(new float[count]), po = Place(new float[hd]);
            _instance.GetFunction("attention")!.Invoke((int)pq, (int)pk, (int)pv, (int)ps, (int)po, count, hd, scale);
            return (MemoryMarshal.Cast<byte, float>(_memory.GetSpan(ps, 4 * count)).ToArray(), MemoryMarshal.Cast<byte, float>(_memory.GetSpan(po, 4 * hd)).ToArray());
        }

        private long _next = 8;

        /// <summary>Copies data into the instance's memory at a 4-byte (not 16-byte) aligned address, as the .NET heap may give.</summary>
        public int Place<T>(ReadOnlySpan<T> data) where T : unmanaged
        {
            var bytes = MemoryMarshal.AsBytes(data);
            _next = (_next + 15) / 16 * 16 + 4;
            long address = _next;
            bytes.CopyTo(_memory.GetSpan(address, bytes.Length));
            _next += bytes.Length + 4;
            return (int)address;
        }

        public T[] Read<T>(int address, int count) where T : unmanaged =>
            MemoryMarshal.Cast<byte, T>(_memory.GetSpan(address, count * System.Runtime.CompilerServices.Unsafe.SizeOf<T>())).ToArray();

        /// <summary>Calls a utility export (<see cref="Utility"/>) by its name in the module.</summary>
        public int Call(Utility u, int a, int b, int c = 0, int d = 0)
        {
            var name = CompiledKernels.UtilityNames.Split(' ')[(int)u];
            var f = _instance.GetFunction(name) ?? throw new InvalidOperationException($"no export {name}");
            return (int)f.Invoke(a, b, c, d)!;
        }

        /// <summary>Calls an export by name (integer and float arguments as the export declares them).</summary>
        public void Invoke(string name, params ValueBox[] args) =>
            (_instance.GetFunction(name) ?? throw new InvalidOperationException($"no export {name}")).Invoke(args);

        public void Dispose() { _store.Dispose(); _engine.Dispose(); }
    }

    private static float[] Reference(GgmlType type, byte[] weights, int rows, int columns, Activation[] xs)
    {
        var info = TensorTypes.Get(type);
        int rowBytes = (int)info.RowBytes(columns);
        var result = new float[rows * xs.Length];
        for (int t = 0; t < xs.Length; t++)
            for (int r = 0; r < rows; r++)
                result[t * rows + r] = info.Kernel!.Dot(weights.AsSpan(r * rowBytes, rowBytes), xs[t]);
        return result;
    }

    /// <summary>Positions whose bits differ (NaN vs NaN counts as equal, see the class summary).</summary>
    private static List<string> Differences(float[] expected, float[] actual)
    {
        var diffs = new List<string>();
        for (int i = 0; i < expected.Length; i++)
        {
            if (float.IsNaN(expected[i]) && float.IsNaN(actual[i])) continue;
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                diffs.Add($"[{i}] C# {expected[i]:R} (0x{BitConverter.SingleToInt32Bits(expected[i]):X8}) wasm {actual[i]:R} (0x{BitConverter.SingleToInt32Bits(actual[i]):X8})");
        }
        return diffs;
    }

    // Values that make the order of a float sum visible: a wide spread of exponents, both signs, and now and
    // then an edge value (NaN, ±∞, subnormals, ±0, the largest float).
    private static float Spread(Random rng, bool edges)
    {
        if (edges && rng.Next(24) == 0)
            return rng.Next(9) switch
            {
                0 => float.NaN, 1 => float.PositiveInfinity, 2 => float.NegativeInfinity,
                3 => BitConverter.Int32BitsToSingle(rng.Next(1, 0x007FFFFF)), 4 => -BitConverter.Int32BitsToSingle(rng.Next(1, 0x007FFFFF)),
                5 => -0f, 6 => 0f, 7 => float.MaxValue, _ => -float.Epsilon,
            };
        return (float)((rng.NextDouble() * 2 - 1) * System.Math.Pow(2, rng.Next(-30, 30)));
    }

    private static Activation Vector(Random rng, int n, bool edges, bool quantize, bool q8k = false)
    {
        var a = new Activation(n);
        quantize |= q8k;
        for (int i = 0; i < n; i++) a.Values[i] = quantize ? (float)((rng.NextDouble() * 2 - 1) * System.Math.Pow(2, rng.Next(-8, 8))) : Spread(rng, edges);
        // Half the time, positive values of one magnitude: large quants of one sign, so block sums use many bits
        // and a reassociated float step (isum·d)·d_x vs isum·(d·d_x) would round differently.
        if (quantize && rng.Next(2) == 0)
            for (int i = 0; i < n; i++) a.Values[i] = (float)(0.5 + 0.5 * rng.NextDouble());
        if (quantize && rng.Next(4) == 0) a.Values[..System.Math.Min(n, q8k ? 256 : 32)].Clear(); // an all-zero block: scale 0
        if (quantize && edges && n > 32)
        {
            // a block of extreme magnitude: huge (scale near the float range) or subnormal (scale subnormal or 0)
            int start = (rng.Next(n) / 32) * 32;
            float by = rng.Next(2) == 0 ? MathF.Pow(2, 110) : MathF.Pow(2, -140);
            for (int i = start; i < start + 32; i++) a.Values[i] *= by;
        }
        if (q8k) a.EnsureQ8K();
        else if (quantize) a.EnsureQ8();
        return a;
    }

    /// <summary>Where each block format keeps its f16 scales (d, and dmin or m), so the tests can set them.</summary>
    private static int[] ScaleOffsets(GgmlType type) => type switch
    {
        GgmlType.Q4_1 or GgmlType.Q5_1 or GgmlType.Q4_K or GgmlType.Q5_K => [0, 2],
        GgmlType.Q2_K => [80, 82],
        GgmlType.Q3_K => [108],
        GgmlType.Q6_K => [208],
        _ => [0],
    };

    private static byte[] Weights(GgmlType type, Random rng, int rows, int columns, bool edges)
    {
        var info = TensorTypes.Get(type);
        var bytes = new byte[rows * info.RowBytes(columns)];
        switch (type)
        {
            case GgmlType.F32:
                var f = MemoryMarshal.Cast<byte, float>(bytes.AsSpan());
                for (int i = 0; i < f.Length; i++) f[i] = Spread(rng, edges);
                break;
            case GgmlType.F16:
                // Finite halves only (the kernel refuses others at load), with subnormals and −0 among them.
                var h = MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan());
                for (int i = 0; i < h.Length; i++)
                {
                    ushort v;
                    do v = (ushort)rng.Next(65536); while ((v & 0x7C00) == 0x7C00);
                    if (edges && rng.Next(16) == 0) v = rng.Next(3) switch { 0 => 0x8000, 1 => (ushort)rng.Next(1, 0x3FF), _ => (ushort)(0x8000 | rng.Next(1, 0x3FF)) };
                    h[i] = v;
                }
                break;
            case GgmlType.BF16:
                // Any bfloat16 (the kernel validates nothing): the top halves of spread floats, NaN, ±∞, subnormals, −0 among them.
                var bf = MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan());
                for (int i = 0; i < bf.Length; i++) bf[i] = (ushort)(BitConverter.SingleToUInt32Bits(Spread(rng, edges)) >> 16);
                if (edges) bf[rng.Next(bf.Length)] = (ushort)(rng.Next(2) == 0 ? 0x0001 : 0x807F); // the smallest and a large subnormal
                break;
            default:
                rng.NextBytes(bytes);
                for (int b = 0; b < bytes.Length / info.BytesPerBlock; b++)
                    foreach (int offset in ScaleOffsets(type))
                    {
                        // A realistic scale most of the time; sometimes a subnormal, ±0, ±∞, NaN or the largest half.
                        ushort d = (ushort)(rng.Next(0x1800, 0x2C00) | (rng.Next(2) << 15));
                        if (edges && rng.Next(12) == 0) d = rng.Next(7) switch { 0 => 0x7C00, 1 => 0xFC00, 2 => 0x7E01, 3 => 0x8000, 4 => 0x7BFF, 5 => 0xFBFF, _ => (ushort)rng.Next(1, 0x3FF) };
                        BitConverter.TryWriteBytes(bytes.AsSpan(b * info.BytesPerBlock + offset), d);
                    }
                break;
        }
        return bytes;
    }

    public static TheoryData<GgmlType> CompiledTypes()
    {
        var data = new TheoryData<GgmlType>();
        foreach (var t in CompiledKernels.Module().Types) data.Add(t);
        return data;
    }

    [Theory]
    [MemberData(nameof(CompiledTypes))]
    public void EveryCompiledKernelGivesTheBitsOfItsCSharpTwin(GgmlType type)
    {
        using var wasm = new Harness(CompiledKernels.Module().Bytes);
        var info = TensorTypes.Get(type);
        bool quantized = info.BlockSize > 1, q8k = info.Kernel!.UsesQ8KActivation;
        int[] lengths = q8k ? [256, 512, 768, 256 * 5] : quantized ? [32, 64, 96, 288, 768, 32 * 33] : [1, 3, 15, 16, 17, 31, 33, 64, 100, 288, 289];
        var rng = new Random(1234 + (int)type);
        int checkedValues = 0;
        foreach (int n in lengths)
            foreach (int rows in new[] { 1, 3, 4, 5, 7, 8, 9 })
                // float types: 1 to 7 tokens, so the token tile (CompiledKernels.TokensPerPass at a time) runs
                // whole, with one and with two tokens left over, and not at all
                foreach (int tokens in quantized ? new[] { 1, 3 } : new[] { 1, 2, 3, 4, 5, 7 })
                    foreach (bool edges in new[] { false, true })
                    {
                        var w = Weights(type, rng, rows, n, edges);
                        var xs = Enumerable.Range(0, tokens).Select(_ => Vector(rng, n, edges, info.Kernel!.UsesQ8Activation, q8k)).ToArray();
                        var expected = Reference(type, w, rows, n, xs);
                        var actual = wasm.MatMul(type, w, rows, n, xs);
                        var diffs = Differences(expected, actual);
                        Assert.True(diffs.Count == 0, $"{info.Name} {rows}×{n}, {tokens} token(s), edges {edges}: {diffs.Count} differ, e.g. {string.Join("; ", diffs.Take(3))}");
                        checkedValues += expected.Length;
                    }
        Assert.True(checkedValues > 100);
    }

    /// <summary>The attention kernel against the C# steps of Models.Attention.Head: scores by Kernels.Dot
    /// times the scale, DetMath.SoftmaxInPlace, Kernels.WeightedRowSum; bits of scores and output.</summary>
    [Fact]
    public void TheAttentionKernelGivesTheBitsOfTheCSharpSteps()
    {
        using var wasm = new Harness(CompiledKernels.Module().Bytes);
        var rng = new Random(99);
        int cases = 0;
        foreach (int hd in new[] { 1, 3, 8, 15, 16, 17, 48, 64 })
            foreach (int count in new[] { 1, 2, 5, 16, 17, 33, 130 })
                foreach (int edge in new[] { 0, 1, 2 })
                {
                    float scale = 1f / MathF.Sqrt(hd);
                    float Value() => (float)((rng.NextDouble() * 2 - 1) * System.Math.Pow(2, rng.Next(-6, 4)));
                    var q = Enumerable.Range(0, hd).Select(_ => Value()).ToArray();
                    var keys = Enumerable.Range(0, count * hd).Select(_ => Value()).ToArray();
                    var values = Enumerable.Range(0, count * hd).Select(_ => Value()).ToArray();
                    if (edge == 1) keys[rng.Next(keys.Length)] = float.NaN;                // a NaN score: every weight NaN
                    if (edge == 2) { keys[rng.Next(keys.Length)] = -0f; values[rng.Next(values.Length)] = float.Epsilon; q[0] = 300f; } // large scores: exp underflow, subnormals
                    var scores = new float[count];
                    for (int t = 0; t < count; t++) scores[t] = Kernels.Dot(q, keys.AsSpan(t * hd, hd)) * scale;
                    DetMath.SoftmaxInPlace(scores);
                    var output = new float[hd];
                    Kernels.WeightedRowSum(scores, values, 0, hd, output);
                    var (s, o) = wasm.Attention(q, keys, values, count, hd, scale);
                    var diffs = Differences(scores, s).Concat(Differences(output, o)).ToList();
                    Assert.True(diffs.Count == 0, $"head dim {hd}, {count} positions, edge case {edge}: {string.Join("; ", diffs.Take(3))}");
                    cases++;
                }
        Assert.Equal(8 * 7 * 3, cases);
    }

    /// <summary>The batch attention export (one call per layer) against the C# steps of Models.Attention.Head for
    /// every (token, head) pair: grouped-query heads, queries at a stride with an offset (as in a fused QKV buffer),
    /// each token's own first row and position count (as a windowed ring gives), head dims around 16, NaN and
    /// large scores; bits of every output.</summary>
    [Fact]
    public void TheBatchAttentionKernelGivesTheBitsOfTheCSharpSteps()
    {
        using var wasm = new Harness(CompiledKernels.Module().Bytes);
        var rng = new Random(123);
        int cases = 0;
        foreach (int hd in new[] { 1, 8, 15, 16, 17, 48 })
            foreach (var (heads, kvHeads) in new[] { (1, 1), (4, 2), (3, 3), (6, 1) })
                foreach (int tokens in new[] { 1, 2, 5 })
                    foreach (int edge in new[] { 0, 1, 2 })
                    {
                        int rows = 40, group = heads / kvHeads, qOffset = rng.Next(3), qStride = heads * hd + qOffset + rng.Next(3);
                        float scale = 1f / MathF.Sqrt(hd);
                        float Value() => (float)((rng.NextDouble() * 2 - 1) * System.Math.Pow(2, rng.Next(-6, 4)));
                        var q = Enumerable.Range(0, tokens * qStride).Select(_ => Value()).ToArray();
                        var keys = Enumerable.Range(0, kvHeads * rows * hd).Select(_ => Value()).ToArray();
                        var values = Enumerable.Range(0, kvHeads * rows * hd).Select(_ => Value()).ToArray();
                        if (edge == 1) keys[rng.Next(keys.Length)] = float.NaN;
                        if (edge == 2) { q[qOffset] = 300f; values[rng.Next(values.Length)] = float.Epsilon; keys[rng.Next(keys.Length)] = -0f; }
                        var table = new int[3 * tokens];
                        var expected = new float[tokens * heads * hd];
                        for (int t = 0; t < tokens; t++)
                        {
                            int first = rng.Next(rows - 1), count = 1 + rng.Next(rows - first);
                            table[3 * t + 1] = first; table[3 * t + 2] = count;
                            for (int h = 0; h < heads; h++)
                            {
                                int kv = h / group;
                                var scores = new float[count];
                                for (int i = 0; i < count; i++)
                                    scores[i] = Kernels.Dot(q.AsSpan(t * qStride + qOffset + h * hd, hd), keys.AsSpan((kv * rows + first + i) * hd, hd)) * scale;
                                DetMath.SoftmaxInPlace(scores);
                                Kernels.WeightedRowSum(scores, values, (kv * rows + first) * hd, hd, expected.AsSpan((t * heads + h) * hd, hd));
                            }
                        }
                        // outputs: one block per token at its own address (as each token's own Activation)
                        var outputs = Enumerable.Range(0, tokens).Select(_ => wasm.Place<float>(new float[heads * hd])).ToArray();
                        for (int t = 0; t < tokens; t++) table[3 * t] = outputs[t];
                        int pq = wasm.Place<float>(q), pk = wasm.Place<float>(keys), pv = wasm.Place<float>(values), pt = wasm.Place<int>(table);
                        int ps = wasm.Place<float>(new float[rows]);
                        var args = new int[(int)CompiledKernels.BatchArg.Count];
                        args[(int)CompiledKernels.BatchArg.Q] = pq + 4 * qOffset;
                        args[(int)CompiledKernels.BatchArg.QStride] = 4 * qStride;
                        args[(int)CompiledKernels.BatchArg.Keys] = pk;
                        args[(int)CompiledKernels.BatchArg.Values] = pv;
                        args[(int)CompiledKernels.BatchArg.HeadStride] = 4 * rows * hd;
                        args[(int)CompiledKernels.BatchArg.Table] = pt;
                        args[(int)CompiledKernels.BatchArg.Tokens] = tokens;
                        args[(int)CompiledKernels.BatchArg.Heads] = heads;
                        args[(int)CompiledKernels.BatchArg.Group] = group;
                        args[(int)CompiledKernels.BatchArg.HeadDim] = hd;
                        args[(int)CompiledKernels.BatchArg.Scores] = ps;
                        wasm.Invoke("attention_batch", wasm.Place<int>(args), scale);
                        var actual = outputs.SelectMany(o => wasm.Read<float>(o, heads * hd)).ToArray();
                        var diffs = Differences(expected, actual);
                        Assert.True(diffs.Count == 0, $"head dim {hd}, {heads}/{kvHeads} heads, {tokens} tokens, edge case {edge}: {string.Join("; ", diffs.Take(3))}");
                        cases++;
                    }
        Assert.Equal(6 * 4 * 3 * 3, cases);
    }

    /// <summary>The residual add and the batch RMSNorm utilities against Kernels.Add and Kernels.RmsNorm (no host
    /// installed, so the C# loops): lengths around the four-value steps, spreads with NaN, ±∞, subnormals, ±0 and the
    /// largest float (sums of squares that overflow to ∞, rows of tiny values where eps decides), several eps.</summary>
    [Fact]
    public void TheAddAndRmsNormKernelsGiveTheBitsOfTheCSharpSteps()
    {
        using var wasm = new Harness(CompiledKernels.Module().Bytes);
        var rng = new Random(31);
        int cases = 0;
        foreach (int n in new[] { 1, 2, 3, 4, 5, 7, 15, 16, 17, 64, 288, 289 })
            foreach (int kind in new[] { 0, 1, 2, 3 })
            {
                // kind 0: ordinary values; 1: edge values among them; 2: huge rows (Σx² overflows); 3: tiny rows (eps decides)
                float Value() => kind switch
                {
                    1 => Spread(rng, edges: true),
                    2 => (float)((rng.NextDouble() * 2 - 1) * 1e30),
                    3 => BitConverter.Int32BitsToSingle(rng.Next(0, 0x00FFFFFF)) * (rng.Next(2) == 0 ? 1 : -1),
                    _ => (float)((rng.NextDouble() * 2 - 1) * System.Math.Pow(2, rng.Next(-8, 8))),
                };
                int rows = 1 + rng.Next(4);
                float eps = kind == 3 ? 1e-6f : new[] { 1e-5f, 1e-6f, 1e-12f }[rng.Next(3)];
                var x = Enumerable.Range(0, rows * n).Select(_ => Value()).ToArray();
                var other = Enumerable.Range(0, rows * n).Select(_ => Value()).ToArray();
                var w = Enumerable.Range(0, n).Select(_ => kind == 1 ? Spread(rng, edges: true) : (float)(0.5 + rng.NextDouble())).ToArray();

                var sum = (float[])x.Clone();
                Kernels.Add(sum, other);
                int py = wasm.Place<float>(x), px = wasm.Place<float>(other);
                wasm.Call(Utility.AddInPlace, py, px, rows * n);
                var diffs = Differences(sum, wasm.Read<float>(py, rows * n));
                Assert.True(diffs.Count == 0, $"add, n {n}, kind {kind}: {string.Join("; ", diffs.Take(3))}");

                var expected = new float[rows * n];
                for (int t = 0; t < rows; t++) Kernels.RmsNorm(x.AsSpan(t * n, n), w, eps, expected.AsSpan(t * n, n));
                int xs = wasm.Place<float>(x), ws = wasm.Place<float>(w);
                var outputs = Enumerable.Range(0, rows).Select(_ => wasm.Place<float>(new float[n])).ToArray();
                int table = wasm.Place<int>(outputs);
                var args = new int[(int)Kernels.RmsNormArg.Size];
                args[(int)Kernels.RmsNormArg.X] = xs;
                args[(int)Kernels.RmsNormArg.Length] = n;
                args[(int)Kernels.RmsNormArg.Weight] = ws;
                args[(int)Kernels.RmsNormArg.Outputs] = table;
                args[(int)Kernels.RmsNormArg.Count] = rows;
                args[(int)Kernels.RmsNormArg.Eps] = BitConverter.SingleToInt32Bits(eps);
                wasm.Call(Utility.RmsNormRows, wasm.Place<int>(args), 0);
                diffs = Differences(expected, outputs.SelectMany(o => wasm.Read<float>(o, n)).ToArray());
                Assert.True(diffs.Count == 0, $"rmsnorm, n {n}, kind {kind}, {rows} rows: {string.Join("; ", diffs.Take(3))}");
                cases++;
            }
        Assert.Equal(12 * 4, cases);
    }

    /// <summary>The batch rotary-embedding-and-store utility against Rope.Apply and KvCache.Store: adjacent and
    /// NeoX pairs, partial rotary (fewer rotated dims than the head's), no rotary at all, grouped KV heads, queries
    /// and keys at strides with offsets, and a windowed cache whose ring wraps (each row also written to its
    /// mirror); bits of the rotated queries and of both whole caches.</summary>
    [Fact]
    public void TheRopeAndStoreKernelGivesTheBitsOfTheCSharpSteps()
    {
        using var wasm = new Harness(CompiledKernels.Module().Bytes);
        var rng = new Random(57);
        int cases = 0;
        foreach (int hd in new[] { 2, 8, 16, 48 })
            foreach (int dims in new[] { 0, hd, hd / 2 - (hd / 2) % 2 })
                foreach (bool neox in new[] { false, true })
                    foreach (int window in new[] { 0, 5 })
                    {
                        if (dims == 0 && neox) continue;
                        var rope = dims == 0 ? null : new Models.Rope(dims, 10000f, neox);
                        int heads = 4, kvHeads = rng.Next(2) == 0 ? 4 : 2, tokens = 1 + rng.Next(6), context = 24, maxBatch = 6, startPos = rng.Next(12);
                        var cache = new Models.KvCache(0, kvHeads, hd, context, window, maxBatch, Models.KvStorage.F32, Models.KvStorage.F32);
                        var keysStore = (Models.F32KvStorage)cache.Keys; var valuesStore = (Models.F32KvStorage)cache.Values;
                        float Value() => rng.Next(40) == 0 ? Spread(rng, edges: true) : (float)((rng.NextDouble() * 2 - 1) * System.Math.Pow(2, rng.Next(-6, 6)));
                        // whatever an earlier batch left in the cache stays where this one does not write
                        var before = keysStore.Raw(0, 0).Data; for (int i = 0; i < before.Length; i++) before[i] = Value();
                        var beforeV = valuesStore.Raw(0, 0).Data; for (int i = 0; i < beforeV.Length; i++) beforeV[i] = Value();
                        int qOffset = rng.Next(3), qStride = heads * hd + qOffset + rng.Next(3), kOffset = rng.Next(3), kStride = kvHeads * hd + kOffset + rng.Next(3);
                        var q = Enumerable.Range(0, tokens * qStride).Select(_ => Value()).ToArray();
                        var k = Enumerable.Range(0, tokens * kStride).Select(_ => Value()).ToArray();
                        var v = Enumerable.Range(0, tokens * kStride).Select(_ => Value()).ToArray();
                        int half = dims / 2;
                        var cos = new float[tokens * half]; var sin = new float[tokens * half];
                        for (int t = 0; t < tokens; t++) rope?.Angles(startPos + t, cos.AsSpan(t * half, half), sin.AsSpan(t * half, half));
                        var table = new int[2 * tokens];
                        for (int t = 0; t < tokens; t++)
                        {
                            int pos = startPos + t, slot = cache.Wraps ? pos % cache.Capacity : pos;
                            table[2 * t] = slot; table[2 * t + 1] = cache.Wraps ? slot + cache.Capacity : -1;
                        }
                        int pq = wasm.Place<float>(q), pk = wasm.Place<float>(k), pv = wasm.Place<float>(v), pc = wasm.Place<float>(cos), ps = wasm.Place<float>(sin);
                        int pkeys = wasm.Place<float>(before), pvalues = wasm.Place<float>(beforeV), pt = wasm.Place<int>(table);
                        // the C# steps (AttentionBatch.StoreToken)
                        var eq = (float[])q.Clone(); var ek = (float[])k.Clone();
                        for (int t = 0; t < tokens; t++)
                        {
                            var qr = eq.AsSpan(t * qStride + qOffset, heads * hd); var kr = ek.AsSpan(t * kStride + kOffset, kvHeads * hd);
                            rope?.Apply(qr, heads, hd, cos.AsSpan(t * half, half), sin.AsSpan(t * half, half));
                            rope?.Apply(kr, kvHeads, hd, cos.AsSpan(t * half, half), sin.AsSpan(t * half, half));
                            cache.Store(startPos + t, kr, v.AsSpan(t * kStride + kOffset, kvHeads * hd));
                        }
                        var args = new int[(int)CompiledKernels.RopeStoreArg.Size];
                        args[(int)CompiledKernels.RopeStoreArg.Q] = pq + 4 * qOffset; args[(int)CompiledKernels.RopeStoreArg.QStride] = 4 * qStride;
                        args[(int)CompiledKernels.RopeStoreArg.K] = pk + 4 * kOffset; args[(int)CompiledKernels.RopeStoreArg.KStride] = 4 * kStride;
                        args[(int)CompiledKernels.RopeStoreArg.V] = pv + 4 * kOffset; args[(int)CompiledKernels.RopeStoreArg.VStride] = 4 * kStride;
                        args[(int)CompiledKernels.RopeStoreArg.Heads] = heads; args[(int)CompiledKernels.RopeStoreArg.KvHeads] = kvHeads;
                        args[(int)CompiledKernels.RopeStoreArg.HeadDim] = hd; args[(int)CompiledKernels.RopeStoreArg.Half] = half;
                        args[(int)CompiledKernels.RopeStoreArg.Neox] = neox ? 1 : 0;
                        args[(int)CompiledKernels.RopeStoreArg.Cos] = pc; args[(int)CompiledKernels.RopeStoreArg.Sin] = ps;
                        args[(int)CompiledKernels.RopeStoreArg.Keys] = pkeys; args[(int)CompiledKernels.RopeStoreArg.Values] = pvalues;
                        args[(int)CompiledKernels.RopeStoreArg.HeadStride] = 4 * keysStore.Rows * hd;
                        args[(int)CompiledKernels.RopeStoreArg.Table] = pt; args[(int)CompiledKernels.RopeStoreArg.Count] = tokens;
                        wasm.Call(Utility.RopeStore, wasm.Place<int>(args), 0);
                        string what = $"head dim {hd}, rotary dims {dims}, neox {neox}, window {window}, {tokens} tokens at {startPos}, {kvHeads} KV heads";
                        var diffs = Differences(eq, wasm.Read<float>(pq, q.Length));
                        Assert.True(diffs.Count == 0, $"q, {what}: {string.Join("; ", diffs.Take(3))}");
                        diffs = Differences(keysStore.Raw(0, 0).Data, wasm.Read<float>(pkeys, before.Length));
                        Assert.True(diffs.Count == 0, $"keys, {what}: {string.Join("; ", diffs.Take(3))}");
                        diffs = Differences(valuesStore.Raw(0, 0).Data, wasm.Read<float>(pvalues, beforeV.Length));
                        Assert.True(diffs.Count == 0, $"values, {what}: {string.Join("; ", diffs.Take(3))}");
                        cases++;
                    }
        Assert.True(cases >= 30, $"{cases} cases");
    }

    /// <summary>Greedy sampling's argmax: the index, compared with <see cref="Kernels.ArgMax"/> (no host installed,
    /// so the C# loop) on spreads with ties, ±0, ±∞ and NaNs (first, last, everywhere).</summary>
    [Fact]
    public void TheArgMaxAndFiniteKernelsGiveTheCSharpAnswers()
    {
        using var wasm = new Harness(CompiledKernels.Module().Bytes);
        var rng = new Random(5);
        int cases = 0;
        foreach (int n in new[] { 1, 2, 3, 4, 5, 7, 16, 17, 63, 64, 65, 100, 1000, 32000 })
            for (int kind = 0; kind < 8; kind++)
            {
                var x = new float[n];
                for (int i = 0; i < n; i++) x[i] = kind == 1 ? (float)rng.Next(-3, 3) : Spread(rng, edges: kind >= 2);   // kind 1: many ties
                if (kind == 3) x[0] = float.NaN;
                if (kind == 4) x[n - 1] = float.PositiveInfinity;
                if (kind == 5) Array.Fill(x, float.NaN);
                if (kind == 6) { Array.Fill(x, -0f); x[rng.Next(n)] = 0f; }
                if (kind == 7) x[rng.Next(n)] = float.NegativeInfinity;
                int address = wasm.Place<float>(x);
                Assert.True(Kernels.ArgMax(x) == wasm.Call(Utility.ArgMax, address, n), $"argmax, n {n}, kind {kind}");
                Assert.True(Kernels.AllFinite(x) == (wasm.Call(Utility.AllFinite, address, n) != 0), $"all finite, n {n}, kind {kind}");
                cases++;
            }
        // AllFinite on every position of a bad value, for short and odd lengths
        foreach (int n in new[] { 0, 1, 3, 4, 5, 9, 70 })
            for (int at = 0; at < n; at++)
                foreach (float bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
                {
                    var x = Enumerable.Range(0, n).Select(i => (float)i - 2.5f).ToArray();
                    x[at] = bad;
                    Assert.Equal(0, wasm.Call(Utility.AllFinite, wasm.Place<float>(x), n));
                    x[at] = float.MaxValue;
                    Assert.Equal(1, wasm.Call(Utility.AllFinite, wasm.Place<float>(x), n));
                }
        Assert.Equal(14 * 8, cases);
    }

    /// <summary>SwiGLU's gating against <see cref="DetMath.SiluTimes"/>'s C# path (DetMath.Silu, then the product):
    /// inputs over the whole float range (exp clamp on both sides), ±0, ±∞, NaN, subnormals, odd lengths.</summary>
    [Fact]
    public void TheSiluGatingKernelGivesTheBitsOfTheCSharpSteps()
    {
        using var wasm = new Harness(CompiledKernels.Module().Bytes);
        var rng = new Random(17);
        // lengths around the kernel's four-value steps (the last n % 4 go one at a time)
        foreach (int n in new[] { 1, 2, 3, 4, 5, 6, 7, 15, 16, 17, 288, 769 })
            foreach (bool edges in new[] { false, true })
            {
                var gate = Enumerable.Range(0, n).Select(_ => rng.Next(3) == 0 ? Spread(rng, edges) : (float)((rng.NextDouble() * 2 - 1) * System.Math.Pow(2, rng.Next(-12, 8)))).ToArray();
                var up = Enumerable.Range(0, n).Select(_ => Spread(rng, edges)).ToArray();
                if (edges)
                {
                    // at both exp clamps (±200) and just inside, e^x near the float range's ends, NaN, subnormals
                    float[] special = [200f, -200f, 199.99998f, -199.99998f, 88.7f, -88.7f, -103.9f, float.NaN, float.Epsilon, -float.Epsilon, 1e-40f, float.MaxValue, -float.MaxValue];
                    for (int k = 0; k < n; k += 1 + rng.Next(3)) gate[k] = special[rng.Next(special.Length)];
                    gate[0] = float.NegativeInfinity; gate[n / 2] = float.PositiveInfinity; gate[n - 1] = -0f;
                }
                var expected = new float[n];
                DetMath.SiluTimes(gate, up, expected);
                int g = wasm.Place<float>(gate), u = wasm.Place<float>(up), o = wasm.Place<float>(new float[n]);
                wasm.Call(Utility.SiluTimes, g, u, o, n);
                var diffs = Differences(expected, wasm.Read<float>(o, n));
                Assert.True(diffs.Count == 0, $"n {n}, edges {edges}: {string.Join("; ", diffs.Take(3))}");

                // the rows form: the same values as two rows of n (gate and up rows n floats apart), each into its own output
                var gate2 = gate.Concat(gate.Reverse()).ToArray();
                var up2 = up.Concat(up.Reverse()).ToArray();
                var expected2 = new float[2 * n];
                DetMath.SiluTimes(gate2, up2, expected2);
                int[] outs = [wasm.Place<float>(new float[n]), wasm.Place<float>(new float[n])];
                var args = new int[(int)DetMath.SiluRowsArg.Size];
                args[(int)DetMath.SiluRowsArg.Gate] = wasm.Place<float>(gate2);
                args[(int)DetMath.SiluRowsArg.Up] = wasm.Place<float>(up2);
                args[(int)DetMath.SiluRowsArg.Width] = n;
                args[(int)DetMath.SiluRowsArg.Outputs] = wasm.Place<int>(outs);
                args[(int)DetMath.SiluRowsArg.Count] = 2;
                wasm.Call(Utility.SiluTimesRows, wasm.Place<int>(args), 0);
                diffs = Differences(expected2, wasm.Read<float>(outs[0], n).Concat(wasm.Read<float>(outs[1], n)).ToArray());
                Assert.True(diffs.Count == 0, $"rows, n {n}, edges {edges}: {string.Join("; ", diffs.Take(3))}");
            }
    }

    /// <summary>The trace's hash: messages of many lengths, padded as FIPS 180-4 says, compressed by the kernel from the
    /// initial state; the digest must equal the runtime's C# SHA-256 and the platform's.</summary>
    [Fact]
    public void TheSha256KernelGivesTheDigestOfTheCSharpHash()
    {
        using var wasm = new Harness(CompiledKernels.Module().Bytes);
        var rng = new Random(3);
        uint[] initial = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
        foreach (int length in new[] { 0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 4096, 128000 })
        {
            var message = new byte[length];
            rng.NextBytes(message);
            int padded = (length + 9 + 63) / 64 * 64;
            var blocks = new byte[padded];
            message.CopyTo(blocks, 0);
            blocks[length] = 0x80;
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(blocks.AsSpan(padded - 8), (ulong)length * 8);
            int state = wasm.Place<uint>(initial), data = wasm.Place<byte>(blocks);
            wasm.Call(Utility.Sha256Blocks, state, data, padded / 64);
            var words = wasm.Read<uint>(state, 8);
            var digest = new byte[32];
            for (int i = 0; i < 8; i++) System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(digest.AsSpan(4 * i), words[i]);
            Assert.Equal(MicroLm.Generation.Sha256.HashData(message), digest);
            Assert.Equal(System.Security.Cryptography.SHA256.HashData(message), digest);
        }
    }

    /// <summary>The activation's Q8_0 form against <see cref="Activation.EnsureQ8"/>'s C# loop: quants, f16-rounded
    /// scales, scaled sums and group sums, bit for bit, on finite values from subnormal to near float's largest
    /// (scales that round to f16 subnormals, ties, and overflow to ∞), all-zero blocks and ±0.</summary>
    [Fact]
    public void TheQuantizeKernelGivesTheCSharpQ8Form()
    {
        using var wasm = new Harness(CompiledKernels.Module().Bytes);
        var rng = new Random(11);
        int blocksChecked = 0;
        foreach (int blocks in new[] { 1, 2, 9, 24, 64 })
            for (int kind = 0; kind < 6; kind++)
            {
                int n = blocks * Activation.Q8Block;
                var a = new Activation(n);
                for (int i = 0; i < n; i++)
                {
                    double magnitude = kind switch
                    {
                        0 => System.Math.Pow(2, rng.Next(-8, 8)),
                        1 => System.Math.Pow(2, rng.Next(-30, -10)),     // scales near and below f16's normal range
                        2 => System.Math.Pow(2, rng.Next(10, 20)),       // scales near f16's largest (65504) and beyond
                        3 => System.Math.Pow(2, rng.Next(-149, 127)),    // anything finite
                        _ => System.Math.Pow(2, rng.Next(-4, 4)),
                    };
                    a.Values[i] = (float)((rng.NextDouble() * 2 - 1) * magnitude);
                }
                if (kind == 4) { a.Values[..32].Clear(); a.Values[n - 1] = -0f; }
                if (kind == 5)
                    for (int b = 0; b < blocks; b++)  // amax/127 exactly halfway between two halves, or at 65520·127
                        a.Values[b * 32 + rng.Next(32)] = b % 2 == 0 ? 127f * (1f + 1f / 2048f) * MathF.Pow(2, rng.Next(-14, 15)) : 65520f * 127f;
                var values = a.Values.ToArray();
                a.EnsureQ8();
                int pv = wasm.Place<float>(values);
                int q = wasm.Place(new byte[n]), sc = wasm.Place(new float[blocks]), ss = wasm.Place(new float[blocks]), gs = wasm.Place(new int[8 * blocks]);
                int outputs = wasm.Place<int>([q, sc, ss, gs]);
                wasm.Call(Utility.QuantizeQ8, pv, blocks, outputs);
                Assert.Equal(a.Q8[..n].ToArray(), wasm.Read<sbyte>(q, n));
                var diffs = Differences(a.Q8Scales.AsSpan(0, blocks).ToArray(), wasm.Read<float>(sc, blocks))
                    .Concat(Differences(a.Q8ScaledSums.AsSpan(0, blocks).ToArray(), wasm.Read<float>(ss, blocks))).ToList();
                Assert.True(diffs.Count == 0, $"{blocks} blocks, kind {kind}: {string.Join("; ", diffs.Take(3))}");
                Assert.Equal(a.Q8GroupSums8.AsSpan(0, 8 * blocks).ToArray(), wasm.Read<int>(gs, 8 * blocks));
                blocksChecked += blocks;
            }
        Assert.Equal(6 * (1 + 2 + 9 + 24 + 64), blocksChecked);
    }

    [Fact]
    public void TheModuleIsTheSameBytesEveryTimeAndCoversEveryType()
    {
        var (a, types) = CompiledKernels.Module();
        var (b, _) = CompiledKernels.Module();
        Assert.Equal(a, b);
        // every type the runtime computes with has a compiled kernel
        foreach (var info in TensorTypes.All)
            if (info.Kernel != null) Assert.Contains(info.Type, types);
        Assert.True(a.Length < 64 * 1024, $"module is {a.Length} bytes");
    }

    /// <summary>The comparison can fail: a module emitted while the lane fold is switched to left-to-right
    /// (a different, equally valid order) gives other bits than the C# kernels, and the check says so.</summary>
    [Fact]
    public void AKernelEmittedWithAnotherLaneOrderIsCaught()
    {
        byte[] other;
        Kernels.AlternativeOrderForTests = 1;
        try { other = CompiledKernels.Module().Bytes; }
        finally { Kernels.AlternativeOrderForTests = 0; }
        Assert.NotEqual(CompiledKernels.Module().Bytes, other);
        using var wasm = new Harness(other);
        var rng = new Random(7);
        foreach (var type in new[] { GgmlType.F32, GgmlType.F16, GgmlType.BF16 })
            foreach (int tokens in new[] { 1, CompiledKernels.TokensPerPass })
            {
                // one token: the single dot; TokensPerPass tokens: F32's token tile
                var w = Weights(type, rng, 8, 256, edges: false);
                var xs = Enumerable.Range(0, tokens).Select(_ => Vector(rng, 256, edges: false, quantize: false)).ToArray();
                var diffs = Differences(Reference(type, w, 8, 256, xs), wasm.MatMul(type, w, 8, 256, xs));
                Assert.NotEmpty(diffs);
            }
    }
    /// <summary>The same for the quantized (8-lane integer) order: a module emitted while
    /// <see cref="IntegerDot.EmitFold"/> combines its lanes left to right gives other bits than the C# kernels of
    /// the types that fold that way (Q8_0, Q4_0: single rows and the four-row passes), and the check says so.</summary>
    [Fact]
    public void AQuantizedKernelEmittedWithAnotherLaneFoldIsCaught()
    {
        byte[] other;
        IntegerDot.AlternativeEmittedFoldForTests = 1;
        try { other = CompiledKernels.Module().Bytes; }
        finally { IntegerDot.AlternativeEmittedFoldForTests = 0; }
        Assert.NotEqual(CompiledKernels.Module().Bytes, other);
        using var wasm = new Harness(other);
        using var right = new Harness(CompiledKernels.Module().Bytes);
        var rng = new Random(8);
        foreach (var type in new[] { GgmlType.Q8_0, GgmlType.Q4_0 })
            foreach (int rows in new[] { CompiledKernels.RowsPerPass - 1, CompiledKernels.RowsPerPass }) // single rows; one four-row pass
            {
                var w = Weights(type, rng, rows, 32 * 16, edges: false);
                var xs = new[] { Vector(rng, 32 * 16, edges: false, quantize: true) };
                var expected = Reference(type, w, rows, 32 * 16, xs);
                Assert.Empty(Differences(expected, right.MatMul(type, w, rows, 32 * 16, xs)));
                // a row's 8 lanes hold sums of different sizes, so the two orders round differently on most rows
                Assert.NotEmpty(Differences(expected, wasm.MatMul(type, w, rows, 32 * 16, xs)));
            }
    }
}
