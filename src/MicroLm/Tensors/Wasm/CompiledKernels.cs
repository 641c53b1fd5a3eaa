using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using MicroLm.Tensors.Quants;

namespace MicroLm.Tensors.Wasm;

/// <summary>Emits one dot product of a weight row with an activation (a tensor type's part of a compiled
/// kernel): reads the row at <c>row</c>, the activation at <c>x</c> (floats, or Q8_0 quants for the
/// quantized types) with its block scales at <c>scales</c>, <c>n</c> values; leaves the f32 on the stack.</summary>
internal delegate void WasmDot(WasmFunction f, Local row, Local x, Local scales, Local n);

/// <summary>Emits <see cref="CompiledKernels.RowsPerPass"/> dot products at once: weight rows at the addresses in
/// <c>rows</c>, one activation (as <see cref="WasmDot"/>); sets each f32 of <c>results</c> to its row's dot, with
/// the bits <see cref="WasmDot"/> gives for that row (each row keeps its own lanes and order; only loads and the
/// activation's unpacking are shared).</summary>
internal delegate void WasmDotRows(WasmFunction f, Local[] rows, Local x, Local scales, Local n, Local[] results);

/// <summary>Emits one row's dot products with <see cref="CompiledKernels.TokensPerPass"/> float activations at once
/// (batched prefill of the float types): the row at <c>row</c>, the activations at the addresses in <c>xs</c>,
/// <c>n</c> values; sets each f32 of <c>results</c> to the bits <see cref="WasmDot"/> gives for that activation
/// (each keeps its own lanes and order; only the row's loads are shared).</summary>
internal delegate void WasmDotTokens(WasmFunction f, Local row, Local[] xs, Local n, Local[] results);

/// <summary>Where a host (the browser page) runs the compiled kernels. Addresses are offsets into the
/// WebAssembly memory the .NET runtime itself runs in, which the kernel module imports.</summary>
internal interface IKernelHost
{
    /// <summary>Calls exported function <paramref name="function"/> of <see cref="CompiledKernels.Module"/>
    /// with the matmul arguments (see <see cref="CompiledKernels.MatMulParams"/>).</summary>
    void MatMul(int function, int weights, int rowBytes, int rows, int n, int xs, int count, int output, int stride);

    /// <summary>Calls the module's <c>attention</c> export (see <see cref="CompiledKernels.EmitAttention"/>).</summary>
    void Attention(int q, int keys, int values, int scores, int output, int count, int headDim, float scale);

    /// <summary>Calls the module's <c>attention_batch</c> export (see <see cref="CompiledKernels.EmitAttentionBatch"/>).</summary>
    void AttentionBatch(int args, float scale);

    /// <summary>Calls utility export <paramref name="function"/> (an index into <see cref="CompiledKernels.UtilityNames"/>)
    /// with four i32 arguments; returns its i32 result.</summary>
    int Call(int function, int a, int b, int c, int d);
}

/// <summary>The module's small exports besides the matmuls and attention, in export order (the host
/// resolves them by <see cref="CompiledKernels.UtilityNames"/>). Each takes four i32 and returns an i32.</summary>
internal enum Utility
{
    /// <summary>(x, n) → index of the largest of n floats, as <see cref="Math.Kernels.ArgMax"/>.</summary>
    ArgMax,
    /// <summary>(x, n) → 1 if every one of n floats is finite, as <see cref="Math.Kernels.AllFinite"/>.</summary>
    AllFinite,
    /// <summary>(gate, up, out, n) → 0: out = silu(gate) ⊙ up, as <see cref="Math.DetMath.SiluTimes"/>.</summary>
    SiluTimes,
    /// <summary>(state, data, blocks) → 0: SHA-256 compression of 64-byte blocks (the trace's hash), as <see cref="Generation.Sha256"/>.</summary>
    Sha256Blocks,
    /// <summary>(values, blocks, outputs) → 0: the activation's Q8_0 form, as <see cref="Activation.EnsureQ8"/>.</summary>
    QuantizeQ8,
    /// <summary>(y, x, n) → 0: y += x over n floats, as <see cref="Math.Kernels.Add"/>.</summary>
    AddInPlace,
    /// <summary>(args) → 0: <see cref="Math.Kernels.RmsNorm"/> of several rows (<see cref="Math.Kernels.EmitRmsNormRows"/>).</summary>
    RmsNormRows,
    /// <summary>(args) → 0: <see cref="SiluTimes"/> of several rows (<see cref="Math.DetMath.EmitSiluTimesRows"/>).</summary>
    SiluTimesRows,
    /// <summary>(args) → 0: a batch's rotary embedding and KV cache store (<see cref="CompiledKernels.EmitRopeStore"/>).</summary>
    RopeStore,
}

/// <summary>The runtime's WebAssembly SIMD kernels: one module, generated here from the kernel definitions
/// that sit beside each tensor type's C# kernel (<see cref="RowKernel.WasmDot"/>), and the hook through which
/// a host that can run it takes over <see cref="WeightMatrix.MatMul"/>.
///
/// Every exported function has the signature of <see cref="MatMulParams"/>:
/// <c>(w, rowBytes, rows, n, xs, count, out, stride)</c> — for r &lt; rows and t &lt; count,
/// <c>out[t·stride + r] = dot(row r at w + r·rowBytes, token t)</c>, where <c>xs</c> holds per token two i32
/// addresses: the activation's values (float types) or Q8_0 quants, and its Q8_0 block scales; for the types that
/// read the Q8_K form (K-quants, IQ4_XS) its quants and its <see cref="Q8KForm.Blocks"/> (d's, then per-16 sums).
/// Each dot follows the documented order of its C# twin exactly, so the bits are the same.</summary>
internal static class CompiledKernels
{
    public static readonly WasmType[] MatMulParams =
        [WasmType.I32, WasmType.I32, WasmType.I32, WasmType.I32, WasmType.I32, WasmType.I32, WasmType.I32, WasmType.I32];

    private static IKernelHost? _host;
    private static int[] _functionOf = [];

    /// <summary>Matmuls run by the host so far (the page and the Node runner report it).</summary>
    public static long Calls;

    public static bool Active => _host != null;

    /// <summary>The module and the tensor types of its functions, in export order. Deterministic: the
    /// same bytes on every machine.</summary>
    public static (byte[] Bytes, GgmlType[] Types) Module()
    {
        var module = new WasmModule();
        var types = new List<GgmlType>();
        foreach (var info in TensorTypes.All)
        {
            if (info.Kernel?.WasmDot is not { } dot) continue;
            var dotRows = info.Kernel.WasmDotRows;
            // The token-tile pass is a function of its own, called by the type's matmul: inlined, its registers
            // made V8 allocate the single-token loop (decode) worse.
            int? tokens = info.Kernel.WasmDotTokens is { } dotTokens
                ? module.AddFunction(info.Name + "_tokens", MatMulParams, [], f => EmitMatMulTokens(f, dotTokens))
                : null;
            module.AddFunction(info.Name, MatMulParams, [], f => EmitMatMul(f, dot, dotRows, tokens));
            types.Add(info.Type);
        }
        int attention = module.AddFunction("attention", [WasmType.I32, WasmType.I32, WasmType.I32, WasmType.I32, WasmType.I32, WasmType.I32, WasmType.I32, WasmType.F32], [], EmitAttention);
        module.AddFunction("attention_batch", [WasmType.I32, WasmType.F32], [], f => EmitAttentionBatch(f, attention));
        foreach (var u in Enum.GetValues<Utility>())
            module.AddFunction(UtilityName(u), UtilityParams, [WasmType.I32], f => EmitUtility(f, u));
        return (module.ToBytes(), types.ToArray());
    }

    public static readonly WasmType[] UtilityParams = [WasmType.I32, WasmType.I32, WasmType.I32, WasmType.I32];

    /// <summary>The utility exports' names in <see cref="Utility"/> order (space-separated for the host).</summary>
    public static string UtilityNames => string.Join(' ', Enum.GetValues<Utility>().Select(UtilityName));

    private static string UtilityName(Utility u) => u switch
    {
        Utility.ArgMax => "argmax",
        Utility.AllFinite => "all_finite",
        Utility.SiluTimes => "silu_times",
        Utility.Sha256Blocks => "sha256_blocks",
        Utility.QuantizeQ8 => "quantize_q8",
        Utility.AddInPlace => "add_in_place",
        Utility.RmsNormRows => "rms_norm_rows",
        Utility.SiluTimesRows => "silu_times_rows",
        Utility.RopeStore => "rope_store",
        _ => throw new ArgumentOutOfRangeException(nameof(u)),
    };

    private static void EmitUtility(WasmFunction f, Utility u)
    {
        var p = f.Params;
        switch (u)
        {
            case Utility.ArgMax: Math.Kernels.EmitArgMax(f, p[0], p[1]); break;
            case Utility.AllFinite: Math.Kernels.EmitAllFinite(f, p[0], p[1]); break;
            case Utility.SiluTimes: Math.DetMath.EmitSiluTimes(f, p[0], p[1], p[2], p[3]); f.I32Const(0); break;
            case Utility.Sha256Blocks: Generation.Sha256.EmitCompressBlocks(f, p[0], p[1], p[2]); break;
            case Utility.QuantizeQ8: Activation.EmitQuantize(f, p[0], p[1], p[2]); break;
            case Utility.AddInPlace: Math.Kernels.EmitAddInPlace(f, p[0], p[1], p[2]); f.I32Const(0); break;
            case Utility.RmsNormRows: Math.Kernels.EmitRmsNormRows(f, p[0]); f.I32Const(0); break;
            case Utility.SiluTimesRows: Math.DetMath.EmitSiluTimesRows(f, p[0]); f.I32Const(0); break;
            case Utility.RopeStore: EmitRopeStore(f, p[0]); f.I32Const(0); break;
        }
    }

    /// <summary>Runs a utility through the host; null means the C# path must run.</summary>
    public static int? TryCall(Utility u, int a, int b, int c = 0, int d = 0)
    {
        var host = _host;
        if (host == null) return null;
        return host.Call((int)u, a, b, c, d);
    }

    /// <summary>One query head over positions 0..count−1 of its (head-major) KV cache, as
    /// <c>Models.Attention.Head</c>: scores[t] = dot(q, key t)·scale in the 16-lane order, softmax in
    /// place (<see cref="Math.DetMath.EmitSoftmaxInPlace"/>), output = Σ_t scores[t]·value t.
    /// Parameters: (q, keys, values, scores, out, count, headDim, scale).</summary>
    internal static void EmitAttention(WasmFunction f)
    {
        var p = f.Params;
        Local q = p[0], keys = p[1], values = p[2], scores = p[3], output = p[4], count = p[5], hd = p[6], scale = p[7];
        var t = f.Local(WasmType.I32); var key = f.Local(WasmType.I32); var rowBytes = f.Local(WasmType.I32);
        f.Get(hd).I32Const(2).I32Shl().Set(rowBytes);
        int none = f.Block();
        f.Get(count).I32Eqz().BrIf(none);
        f.Get(keys).Set(key);
        int each = f.Loop();
        f.Get(scores).Get(t).I32Const(2).I32Shl().I32Add();
        // a key row dotted with q: the product k·q has the bits of q·k
        Math.Kernels.EmitDot(f, key, q, hd, 4, static (f, w, offset) => f.Get(w).V128Load(offset), static (f, w, offset) => f.Get(w).F32Load(offset));
        f.Get(scale).F32Mul().F32Store();
        f.Get(key).Get(rowBytes).I32Add().Set(key);
        f.Get(t).I32Const(1).I32Add().Tee(t).Get(count).I32LtS().BrIf(each);
        f.End();
        Math.DetMath.EmitSoftmaxInPlace(f, scores, count);
        Math.Kernels.EmitWeightedRowSum(f, scores, count, values, rowBytes, output, hd);
        f.End();
    }

    /// <summary>y += x through the host (one call for a whole batch's residual add); false means the C# path must run.</summary>
    public static unsafe bool TryAdd(Span<float> y, ReadOnlySpan<float> x)
    {
        if (_host is not { } host || y.Length == 0) return false;
        if (x.Length != y.Length) throw new ArgumentException("lengths differ", nameof(x));
        fixed (float* py = y)
        fixed (float* px = x)
            host.Call((int)Utility.AddInPlace, (int)py, (int)px, y.Length, 0);
        return true;
    }

    private static int[] _rowTable = [];

    /// <summary>The addresses of outputs[0..count)'s values (each at least <paramref name="width"/> floats; allocated
    /// pinned by Activation's constructor), in a table reused across calls: the browser build runs one thread.</summary>
    private static int[] OutputAddresses(Activation[] outputs, int count, int width)
    {
        if (_rowTable.Length < count) _rowTable = new int[count];
        for (int t = 0; t < count; t++)
        {
            if (outputs[t].Values.Length < width) throw new ArgumentOutOfRangeException(nameof(outputs));
            _rowTable[t] = Address(outputs[t].Values);
        }
        return _rowTable;
    }

    /// <summary><see cref="Math.Kernels.RmsNorm"/> of rows 0..count−1 of <paramref name="x"/> (dim floats each) into
    /// outputs[t].Span through the host, in one call; false means the C# path must run. The caller invalidates the
    /// outputs' quantized forms.</summary>
    public static unsafe bool TryRmsNormRows(float[] x, int dim, ReadOnlySpan<float> weight, float eps, Activation[] outputs, int count)
    {
        if (_host is not { } host || count <= 0) return false;
        if ((long)count * dim > x.Length || weight.Length < dim || outputs.Length < count) throw new ArgumentOutOfRangeException(nameof(count));
        var rowTable = OutputAddresses(outputs, count, dim);
        Span<int> args = stackalloc int[(int)Math.Kernels.RmsNormArg.Size];
        fixed (float* px = x)
        fixed (float* pw = weight)
        fixed (int* pt = rowTable)
        fixed (int* pa = args)
        {
            args[(int)Math.Kernels.RmsNormArg.X] = (int)px;
            args[(int)Math.Kernels.RmsNormArg.Length] = dim;
            args[(int)Math.Kernels.RmsNormArg.Weight] = (int)pw;
            args[(int)Math.Kernels.RmsNormArg.Outputs] = (int)pt;
            args[(int)Math.Kernels.RmsNormArg.Count] = count;
            args[(int)Math.Kernels.RmsNormArg.Eps] = BitConverter.SingleToInt32Bits(eps);
            host.Call((int)Utility.RmsNormRows, (int)pa, 0, 0, 0);
        }
        return true;
    }

    /// <summary>output[t] = silu(gate row t) ⊙ up row t for rows 0..count−1 (width floats each) through the host in
    /// one call; false means the C# path must run. The caller invalidates the outputs' quantized forms.</summary>
    public static unsafe bool TrySiluTimesRows(float[] gate, float[] up, int width, Activation[] outputs, int count)
    {
        if (_host is not { } host || count <= 0) return false;
        if ((long)count * width > gate.Length || (long)count * width > up.Length || outputs.Length < count) throw new ArgumentOutOfRangeException(nameof(count));
        var rowTable = OutputAddresses(outputs, count, width);
        Span<int> args = stackalloc int[(int)Math.DetMath.SiluRowsArg.Size];
        fixed (float* pg = gate)
        fixed (float* pu = up)
        fixed (int* pt = rowTable)
        fixed (int* pa = args)
        {
            args[(int)Math.DetMath.SiluRowsArg.Gate] = (int)pg;
            args[(int)Math.DetMath.SiluRowsArg.Up] = (int)pu;
            args[(int)Math.DetMath.SiluRowsArg.Width] = width;
            args[(int)Math.DetMath.SiluRowsArg.Outputs] = (int)pt;
            args[(int)Math.DetMath.SiluRowsArg.Count] = count;
            host.Call((int)Utility.SiluTimesRows, (int)pa, 0, 0, 0);
        }
        return true;
    }

    /// <summary>Where <see cref="EmitRopeStore"/> reads its i32 arguments (index into the argument block).</summary>
    internal enum RopeStoreArg { Q, QStride, K, KStride, V, VStride, Heads, KvHeads, HeadDim, Half, Neox, Cos, Sin, Keys, Values, HeadStride, Table, Count, Size }

    /// <summary>Models.AttentionBatch's per-token step for a whole batch: per token t, the rotary embedding of its
    /// q (heads) and k (kvHeads) rows in place (<see cref="Models.Rope.EmitApply"/>, with cos/sin rows Half floats
    /// apart; none when Half is 0), then its k and v rows copied bit for bit into the F32 caches at row table[2t] of
    /// each KV head (and again at table[2t + 1] unless that is −1: the ring's mirror), as KvCache.Store.
    /// Strides are in bytes.</summary>
    internal static void EmitRopeStore(WasmFunction f, Local args)
    {
        var a = new Local[(int)RopeStoreArg.Size];
        for (int j = 0; j < a.Length; j++) { a[j] = f.Local(WasmType.I32); f.Get(args).I32Load((uint)(4 * j)).Set(a[j]); }
        Local Arg(RopeStoreArg x) => a[(int)x];
        Local t = f.Local(WasmType.I32), cos = f.Local(WasmType.I32), sin = f.Local(WasmType.I32), q = f.Local(WasmType.I32), k = f.Local(WasmType.I32),
            v = f.Local(WasmType.I32), h = f.Local(WasmType.I32), row = f.Local(WasmType.I32), src = f.Local(WasmType.I32), dst = f.Local(WasmType.I32),
            i = f.Local(WasmType.I32), rowBytes = f.Local(WasmType.I32), copy = f.Local(WasmType.I32);
        f.Get(Arg(RopeStoreArg.HeadDim)).I32Const(2).I32Shl().Set(rowBytes);
        int none = f.Block();
        f.Get(Arg(RopeStoreArg.Count)).I32Eqz().BrIf(none);
        int eachToken = f.Loop();
        f.Get(Arg(RopeStoreArg.Q)).Get(t).Get(Arg(RopeStoreArg.QStride)).I32Mul().I32Add().Set(q);
        f.Get(Arg(RopeStoreArg.K)).Get(t).Get(Arg(RopeStoreArg.KStride)).I32Mul().I32Add().Set(k);
        f.Get(Arg(RopeStoreArg.V)).Get(t).Get(Arg(RopeStoreArg.VStride)).I32Mul().I32Add().Set(v);
        f.Get(Arg(RopeStoreArg.Cos)).Get(t).Get(Arg(RopeStoreArg.Half)).I32Mul().I32Const(2).I32Shl().I32Add().Set(cos);
        f.Get(Arg(RopeStoreArg.Sin)).Get(t).Get(Arg(RopeStoreArg.Half)).I32Mul().I32Const(2).I32Shl().I32Add().Set(sin);
        Models.Rope.EmitApply(f, q, Arg(RopeStoreArg.Heads), Arg(RopeStoreArg.HeadDim), Arg(RopeStoreArg.Half), Arg(RopeStoreArg.Neox), cos, sin);
        Models.Rope.EmitApply(f, k, Arg(RopeStoreArg.KvHeads), Arg(RopeStoreArg.HeadDim), Arg(RopeStoreArg.Half), Arg(RopeStoreArg.Neox), cos, sin);
        // the cache rows: table[2t], then the mirror table[2t + 1] if any
        for (int which = 0; which < 2; which++)
        {
            f.Get(Arg(RopeStoreArg.Table)).Get(t).I32Const(3).I32Shl().I32Add().I32Load((uint)(4 * which)).Set(row);
            int skip = f.Block();
            f.Get(row).I32Const(0).I32LtS().BrIf(skip);
            f.I32Const(0).Set(h);
            int eachHead = f.Loop();
            for (int side = 0; side < 2; side++)
            {
                // src = (k or v) + h·rowBytes; dst = (keys or values) + h·headStride + row·rowBytes; copy rowBytes as i32 words
                f.Get(side == 0 ? k : v).Get(h).Get(rowBytes).I32Mul().I32Add().Set(src);
                f.Get(Arg(side == 0 ? RopeStoreArg.Keys : RopeStoreArg.Values)).Get(h).Get(Arg(RopeStoreArg.HeadStride)).I32Mul().I32Add()
                    .Get(row).Get(rowBytes).I32Mul().I32Add().Set(dst);
                f.I32Const(0).Set(i);
                int words = f.Loop();
                f.Get(dst).Get(i).I32Add().Get(src).Get(i).I32Add().I32Load().I32Store();
                f.Get(i).I32Const(4).I32Add().Tee(i).Get(rowBytes).I32LtU().BrIf(words);
                f.End();
            }
            f.Get(h).I32Const(1).I32Add().Tee(h).Get(Arg(RopeStoreArg.KvHeads)).I32LtU().BrIf(eachHead);
            f.End();
            f.End();
        }
        f.Get(t).I32Const(1).I32Add().Tee(t).Get(Arg(RopeStoreArg.Count)).I32LtU().BrIf(eachToken);
        f.End();
        f.End();
    }

    /// <summary>Runs <see cref="EmitRopeStore"/> through the host; false means the C# path must run. Strides and
    /// offsets in floats; <paramref name="table"/> per token: the cache row and the mirror row (or −1).</summary>
    public static unsafe bool TryRopeStore(float[] q, int qStride, int qOffset, float[] k, int kStride, int kOffset, float[] v, int vStride, int vOffset,
        int heads, int kvHeads, int headDim, int half, bool neox, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin,
        float[] keys, float[] values, int rows, int[] table, int count)
    {
        if (_host is not { } host || count <= 0) return false;
        if (headDim <= 0 || 2 * half > headDim || cos.Length < count * half || sin.Length < count * half || table.Length < 2 * count
            || (long)(count - 1) * qStride + qOffset + heads * headDim > q.Length || (long)(count - 1) * kStride + kOffset + kvHeads * headDim > k.Length
            || (long)(count - 1) * vStride + vOffset + kvHeads * headDim > v.Length
            || (long)kvHeads * rows * headDim > keys.Length || (long)kvHeads * rows * headDim > values.Length)
            throw new ArgumentOutOfRangeException(nameof(count));
        for (int t = 0; t < 2 * count; t++)
            if (table[t] >= rows || (table[t] < 0 && (t % 2 == 0 || table[t] != -1))) throw new ArgumentOutOfRangeException(nameof(table));
        Span<int> args = stackalloc int[(int)RopeStoreArg.Size];
        fixed (float* pq = q)
        fixed (float* pk = k)
        fixed (float* pv = v)
        fixed (float* pc = cos)
        fixed (float* ps = sin)
        fixed (float* pkeys = keys)
        fixed (float* pvalues = values)
        fixed (int* pt = table)
        fixed (int* pa = args)
        {
            args[(int)RopeStoreArg.Q] = (int)(pq + qOffset);
            args[(int)RopeStoreArg.QStride] = 4 * qStride;
            args[(int)RopeStoreArg.K] = (int)(pk + kOffset);
            args[(int)RopeStoreArg.KStride] = 4 * kStride;
            args[(int)RopeStoreArg.V] = (int)(pv + vOffset);
            args[(int)RopeStoreArg.VStride] = 4 * vStride;
            args[(int)RopeStoreArg.Heads] = heads;
            args[(int)RopeStoreArg.KvHeads] = kvHeads;
            args[(int)RopeStoreArg.HeadDim] = headDim;
            args[(int)RopeStoreArg.Half] = half;
            args[(int)RopeStoreArg.Neox] = neox ? 1 : 0;
            args[(int)RopeStoreArg.Cos] = (int)pc;
            args[(int)RopeStoreArg.Sin] = (int)ps;
            args[(int)RopeStoreArg.Keys] = (int)pkeys;
            args[(int)RopeStoreArg.Values] = (int)pvalues;
            args[(int)RopeStoreArg.HeadStride] = 4 * rows * headDim;
            args[(int)RopeStoreArg.Table] = (int)pt;
            args[(int)RopeStoreArg.Count] = count;
            host.Call((int)Utility.RopeStore, (int)pa, 0, 0, 0);
        }
        return true;
    }

    /// <summary>Where <see cref="EmitAttentionBatch"/> reads its i32 arguments (index into the argument block).</summary>
    internal enum BatchArg { Q, QStride, Keys, Values, HeadStride, Table, Tokens, Heads, Group, HeadDim, Scores, Count }

    /// <summary>Every (token, head) pair of a batch, each as <see cref="EmitAttention"/> (the function at
    /// <paramref name="attention"/>, called once per pair): one host call per layer instead of one per head.
    /// Parameters: (args, scale), args the address of <see cref="BatchArg"/>'s i32 block — q (token 0's first
    /// query), qStride (bytes between tokens' queries), keys and values (KV head 0, row 0), headStride (bytes
    /// between KV heads), table (per token: output address, first row, positions seen), tokens, heads, group
    /// (query heads per KV head), headDim, scores (scratch of the most positions). Pair (t, h) reads query
    /// q + t·qStride + h·headDim·4 and KV head h / group from its token's first row, and writes its output at
    /// the token's output + h·headDim·4.</summary>
    internal static void EmitAttentionBatch(WasmFunction f, int attention)
    {
        var p = f.Params;
        Local args = p[0], scale = p[1];
        var a = new Local[(int)BatchArg.Count];
        for (int k = 0; k < a.Length; k++) { a[k] = f.Local(WasmType.I32); f.Get(args).I32Load((uint)(4 * k)).Set(a[k]); }
        Local q = a[(int)BatchArg.Q], qStride = a[(int)BatchArg.QStride], keys = a[(int)BatchArg.Keys], values = a[(int)BatchArg.Values],
            headStride = a[(int)BatchArg.HeadStride], table = a[(int)BatchArg.Table], tokens = a[(int)BatchArg.Tokens],
            heads = a[(int)BatchArg.Heads], group = a[(int)BatchArg.Group], hd = a[(int)BatchArg.HeadDim], scores = a[(int)BatchArg.Scores];
        Local t = f.Local(WasmType.I32), h = f.Local(WasmType.I32), entry = f.Local(WasmType.I32), output = f.Local(WasmType.I32),
            first = f.Local(WasmType.I32), count = f.Local(WasmType.I32), rowBytes = f.Local(WasmType.I32), kv = f.Local(WasmType.I32);
        f.Get(hd).I32Const(2).I32Shl().Set(rowBytes);
        int none = f.Block();
        f.Get(tokens).I32Eqz().BrIf(none);
        f.Get(heads).I32Eqz().BrIf(none);
        int eachToken = f.Loop();
        f.Get(table).Get(t).I32Const(12).I32Mul().I32Add().Tee(entry).I32Load().Set(output);
        f.Get(entry).I32Load(4).Get(rowBytes).I32Mul().Set(first);   // the first row's byte offset within a head
        f.Get(entry).I32Load(8).Set(count);
        f.I32Const(0).Set(h);
        int eachHead = f.Loop();
        f.Get(h).Get(group).I32DivU().Get(headStride).I32Mul().Get(first).I32Add().Set(kv);
        f.Get(q).Get(t).Get(qStride).I32Mul().I32Add().Get(h).Get(rowBytes).I32Mul().I32Add();
        f.Get(keys).Get(kv).I32Add();
        f.Get(values).Get(kv).I32Add();
        f.Get(scores);
        f.Get(output).Get(h).Get(rowBytes).I32Mul().I32Add();
        f.Get(count).Get(hd).Get(scale).Call(attention);
        f.Get(h).I32Const(1).I32Add().Tee(h).Get(heads).I32LtU().BrIf(eachHead);
        f.End();
        f.Get(t).I32Const(1).I32Add().Tee(t).Get(tokens).I32LtU().BrIf(eachToken);
        f.End();
        f.End();
    }

    /// <summary>Every (token, head) pair of a batch through the host in one call (see <see cref="EmitAttentionBatch"/>);
    /// false means the C# path must run. <paramref name="table"/> holds per token three ints: this fills the first
    /// (the output's address, from <paramref name="outputs"/>), the caller the first row and the positions seen.
    /// The caches are head-major, <paramref name="rows"/> rows of <paramref name="headDim"/> per KV head.</summary>
    public static unsafe bool TryAttentionBatch(float[] q, int qStride, int qOffset, float[] keys, float[] values, int rows,
        int[] table, Activation[] outputs, int tokens, int heads, int group, int headDim, float scale, float[] scores)
    {
        var host = _host;
        if (host == null || tokens <= 0) return false;
        if (table.Length < 3 * tokens || group <= 0 || heads % group != 0 || (long)(tokens - 1) * qStride + qOffset + heads * headDim > q.Length)
            throw new ArgumentOutOfRangeException(nameof(tokens));
        long kvHeads = heads / group;
        if (kvHeads * rows * headDim > keys.Length || kvHeads * rows * headDim > values.Length) throw new ArgumentOutOfRangeException(nameof(rows));
        for (int t = 0; t < tokens; t++)
        {
            int first = table[3 * t + 1], count = table[3 * t + 2];
            if (first < 0 || count <= 0 || (long)first + count > rows || count > scores.Length || outputs[t].Values.Length < heads * headDim)
                throw new ArgumentOutOfRangeException(nameof(table));
            table[3 * t] = Address(outputs[t].Values); // allocated pinned (Activation's constructor)
        }
        Span<int> args = stackalloc int[(int)BatchArg.Count];
        fixed (float* pq = q)
        fixed (float* pk = keys)
        fixed (float* pv = values)
        fixed (float* ps = scores)
        fixed (int* pt = table)
        fixed (int* pa = args)
        {
            args[(int)BatchArg.Q] = (int)(pq + qOffset);
            args[(int)BatchArg.QStride] = 4 * qStride;
            args[(int)BatchArg.Keys] = (int)pk;
            args[(int)BatchArg.Values] = (int)pv;
            args[(int)BatchArg.HeadStride] = 4 * rows * headDim;
            args[(int)BatchArg.Table] = (int)pt;
            args[(int)BatchArg.Tokens] = tokens;
            args[(int)BatchArg.Heads] = heads;
            args[(int)BatchArg.Group] = group;
            args[(int)BatchArg.HeadDim] = headDim;
            args[(int)BatchArg.Scores] = (int)ps;
            host.AttentionBatch((int)pa, scale);
        }
        return true;
    }

    /// <summary>Runs one attention head through the host (see <see cref="EmitAttention"/>); false means
    /// the C# path must run. <paramref name="at"/> is the head's first element in the caches.</summary>
    public static unsafe bool TryAttention(ReadOnlySpan<float> q, float[] keys, float[] values, int at, int count, int headDim, float scale, Span<float> scores, Span<float> output)
    {
        var host = _host;
        if (host == null || count <= 0) return false;
        if ((long)at + (long)count * headDim > keys.Length || (long)at + (long)count * headDim > values.Length || scores.Length < count || output.Length < headDim || q.Length < headDim)
            throw new ArgumentOutOfRangeException(nameof(count));
        fixed (float* pq = q)
        fixed (float* pk = keys)
        fixed (float* pv = values)
        fixed (float* ps = scores)
        fixed (float* po = output)
            host.Attention((int)pq, (int)(pk + at), (int)(pv + at), (int)ps, (int)po, count, headDim, scale);
        return true;
    }

    /// <summary>Installs (or with null removes) the host that runs <see cref="Module"/>. Only on 32-bit
    /// WebAssembly, where a managed address is an offset into the module's memory.</summary>
    public static void Install(IKernelHost? host)
    {
        if (host != null && IntPtr.Size != 4) throw new PlatformNotSupportedException("compiled kernels need 32-bit WebAssembly addresses");
        var map = new int[64];
        Array.Fill(map, -1);
        var types = Module().Types;
        for (int i = 0; i < types.Length; i++) map[(int)types[i]] = i;
        _functionOf = map;
        _host = host;
    }

    /// <summary>Runs rows [rowStart, rowEnd) of w × xs[0..count) through the host, if one is installed and
    /// has a kernel for w's type; false means the C# kernels must run.</summary>
    public static unsafe bool TryMatMul(WeightMatrix w, ReadOnlySpan<byte> data, bool q8, Activation[] xs, int count, Span<float> output, int rowStart, int rowEnd)
    {
        var host = _host;
        if (host == null || rowEnd <= rowStart) return false;
        int function = _functionOf[(int)w.Type.Type];
        if (function < 0) return false;
        // Activations are allocated pinned (Activation's constructor), so their addresses stay valid.
        if (_activationTable.Length < 2 * count) _activationTable = new int[2 * count]; // grows, then is reused
        var table = _activationTable.AsSpan(0, 2 * count);
        bool q8k = w.Type.Kernel!.UsesQ8KActivation;
        for (int t = 0; t < count; t++)
        {
            if (q8k) { table[2 * t] = Address(xs[t].Q8K!.Q); table[2 * t + 1] = Address(xs[t].Q8K!.Blocks); continue; }
            table[2 * t] = q8 ? Address(xs[t].Q8) : Address(xs[t].Values);
            table[2 * t + 1] = q8 ? Address(xs[t].Q8Scales) : 0;
        }
        fixed (int* pt = table)
        fixed (byte* pw = data)
        fixed (float* po = output)
        {
            host.MatMul(function, (int)(pw + (long)rowStart * w.RowBytes), w.RowBytes, rowEnd - rowStart, w.Columns,
                (int)pt, count, (int)(po + rowStart), w.Rows);
        }
        Calls++;
        return true;
    }

    /// <summary>TryMatMul's activation addresses, reused: a host is installed only in 32-bit WebAssembly, where the
    /// team runs every part on one thread (a [ThreadStatic] here made a test's per-thread allocation count vary).</summary>
    private static int[] _activationTable = [];

    private static unsafe int Address<T>(T[] pinned) where T : unmanaged =>
        (int)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(pinned));

    private static unsafe int Address<T>(Span<T> pinned) where T : unmanaged =>
        (int)Unsafe.AsPointer(ref MemoryMarshal.GetReference(pinned));

    /// <summary>Rows computed per pass by a type's <see cref="WasmDotRows"/>.</summary>
    public const int RowsPerPass = 4;

    /// <summary>Tokens computed per pass by a type's <see cref="WasmDotTokens"/>.</summary>
    public const int TokensPerPass = 3;

    /// <summary>The loops shared by every type: rows outside, tokens inside (rows are read from memory once
    /// and reused from cache for each token), the type's dot in the middle — <see cref="RowsPerPass"/> rows
    /// per pass through <paramref name="dotRows"/> where the type has it, the remaining rows one by one. Where the
    /// type has a token tile (function <paramref name="tokensFunction"/>, <see cref="EmitMatMulTokens"/>), that
    /// computes the first count − count % <see cref="TokensPerPass"/> tokens and these loops only the rest.</summary>
    private static void EmitMatMul(WasmFunction f, WasmDot dot, WasmDotRows? dotRows, int? tokensFunction)
    {
        var p = f.Params;
        Local w = p[0], rowBytes = p[1], rows = p[2], n = p[3], xs = p[4], count = p[5], output = p[6], stride = p[7];
        var r = f.Local(WasmType.I32);
        var t = f.Local(WasmType.I32);
        var row = f.Local(WasmType.I32);
        var x = f.Local(WasmType.I32);
        var scales = f.Local(WasmType.I32);
        var entry = f.Local(WasmType.I32);
        var at = f.Local(WasmType.I32);
        var first = f.Local(WasmType.I32); // the first token these loops compute

        if (tokensFunction is { } tiled)
        {
            f.Get(count).Get(count).I32Const(TokensPerPass).I32RemU().I32Sub().Set(first);
            f.Get(first).If();
            f.Get(w).Get(rowBytes).Get(rows).Get(n).Get(xs).Get(first).Get(output).Get(stride).Call(tiled);
            f.End();
        }
        int none = f.Block();
        f.Get(first).Get(count).I32GeS().BrIf(none);
        if (dotRows != null)
        {
            var rowAt = Enumerable.Range(0, RowsPerPass).Select(_ => f.Local(WasmType.I32)).ToArray();
            var results = Enumerable.Range(0, RowsPerPass).Select(_ => f.Local(WasmType.F32)).ToArray();
            int groupsDone = f.Block();
            f.Get(rows).I32Const(RowsPerPass).I32LtS().BrIf(groupsDone);
            int groupLoop = f.Loop();
            f.Get(w).Get(r).Get(rowBytes).I32Mul().I32Add().Set(rowAt[0]);
            for (int k = 1; k < RowsPerPass; k++) f.Get(rowAt[k - 1]).Get(rowBytes).I32Add().Set(rowAt[k]);
            f.Get(first).Set(t);
            int groupTokens = f.Loop();
            EmitTokenEntry(f, xs, t, entry, x, scales);
            dotRows(f, rowAt, x, scales, n, results);
            // out[t·stride + r + k]
            f.Get(output).Get(t).Get(stride).I32Mul().Get(r).I32Add().I32Const(2).I32Shl().I32Add().Set(at);
            for (int k = 0; k < RowsPerPass; k++) f.Get(at).Get(results[k]).F32Store((uint)(4 * k));
            f.Get(t).I32Const(1).I32Add().Tee(t).Get(count).I32LtS().BrIf(groupTokens);
            f.End();
            f.Get(r).I32Const(RowsPerPass).I32Add().Tee(r).I32Const(RowsPerPass).I32Add().Get(rows).I32LeS().BrIf(groupLoop);
            f.End();
            f.End();
        }
        int rowsDone = f.Block();
        f.Get(r).Get(rows).I32GeS().BrIf(rowsDone);
        int rowLoop = f.Loop();
        f.Get(w).Get(r).Get(rowBytes).I32Mul().I32Add().Set(row);
        f.Get(first).Set(t);
        int tokenLoop = f.Loop();
        EmitTokenEntry(f, xs, t, entry, x, scales);
        // address of out[t·stride + r], then the dot, then the store
        f.Get(output).Get(t).Get(stride).I32Mul().Get(r).I32Add().I32Const(2).I32Shl().I32Add();
        dot(f, row, x, scales, n);
        f.F32Store();
        f.Get(t).I32Const(1).I32Add().Tee(t).Get(count).I32LtS().BrIf(tokenLoop);
        f.End();
        f.Get(r).I32Const(1).I32Add().Tee(r).Get(rows).I32LtS().BrIf(rowLoop);
        f.End();
        f.End();
        f.End();
    }

    /// <summary>The float types' token tile, with the matmul's parameters: rows outside, tokens inside,
    /// <see cref="TokensPerPass"/> tokens per pass through <paramref name="dotTokens"/> (count must be a multiple of it).</summary>
    private static void EmitMatMulTokens(WasmFunction f, WasmDotTokens dotTokens)
    {
        var p = f.Params;
        Local w = p[0], rowBytes = p[1], rows = p[2], n = p[3], xs = p[4], count = p[5], output = p[6], stride = p[7];
        var r = f.Local(WasmType.I32);
        var t = f.Local(WasmType.I32);
        var row = f.Local(WasmType.I32);
        var at = f.Local(WasmType.I32);
        var tx = Enumerable.Range(0, TokensPerPass).Select(_ => f.Local(WasmType.I32)).ToArray();
        var results = Enumerable.Range(0, TokensPerPass).Select(_ => f.Local(WasmType.F32)).ToArray();
        int none = f.Block();
        f.Get(count).I32Eqz().BrIf(none);
        f.Get(rows).I32Eqz().BrIf(none);
        int rowLoop = f.Loop();
        f.Get(w).Get(r).Get(rowBytes).I32Mul().I32Add().Set(row);
        f.I32Const(0).Set(t);
        int tokenLoop = f.Loop();
        for (int j = 0; j < TokensPerPass; j++)
            f.Get(xs).Get(t).I32Const(3).I32Shl().I32Add().I32Load((uint)(8 * j)).Set(tx[j]);
        dotTokens(f, row, tx, n, results);
        // out[(t + j)·stride + r]
        f.Get(output).Get(t).Get(stride).I32Mul().Get(r).I32Add().I32Const(2).I32Shl().I32Add().Set(at);
        for (int j = 0; j < TokensPerPass; j++)
        {
            f.Get(at).Get(results[j]).F32Store();
            if (j + 1 < TokensPerPass) f.Get(at).Get(stride).I32Const(2).I32Shl().I32Add().Set(at);
        }
        f.Get(t).I32Const(TokensPerPass).I32Add().Tee(t).Get(count).I32LtS().BrIf(tokenLoop);
        f.End();
        f.Get(r).I32Const(1).I32Add().Tee(r).Get(rows).I32LtS().BrIf(rowLoop);
        f.End();
        f.End();
    }

    /// <summary>x and scales of token t from the token table (two i32 per token).</summary>
    private static void EmitTokenEntry(WasmFunction f, Local xs, Local t, Local entry, Local x, Local scales)
    {
        f.Get(xs).Get(t).I32Const(3).I32Shl().I32Add().Tee(entry).I32Load().Set(x);
        f.Get(entry).I32Load(4).Set(scales);
    }
}
