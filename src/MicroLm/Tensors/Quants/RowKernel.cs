using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using MicroLm.Math;

namespace MicroLm.Tensors.Quants;

/// <summary>How one tensor type turns a row of its blocks into numbers: decoding to floats, and a dot
/// product with an activation vector. Every dot keeps the reduction order of <see cref="Kernels"/>
/// (float types), or sums exact integer block products in block order (quantized types), so results
/// do not depend on the vector width or the thread that computes them.</summary>
internal abstract class RowKernel
{
    /// <summary>True if <see cref="Dot"/> reads the activation's Q8_0 form (quantized once per matmul).</summary>
    public virtual bool UsesQ8Activation => false;

    /// <summary>True if <see cref="Dot"/> reads the activation's Q8_K form (the K-quants).</summary>
    public virtual bool UsesQ8KActivation => false;

    /// <summary>True if decode reads the activation's <see cref="Activation.HalfScaled"/> form (F16), where it exists.</summary>
    public virtual bool UsesHalfScaledActivation => false;

    public abstract void Dequantize(ReadOnlySpan<byte> row, Span<float> output);

    /// <summary>This type's dot in WebAssembly SIMD (same order, same bits as <see cref="Dot"/>), written
    /// beside the C# kernel; null where the type has none yet (the C# kernel then runs in the browser too).</summary>
    internal virtual Wasm.WasmDot? WasmDot => null;

    /// <summary>Optional: this type's dot for several rows at once in WebAssembly (the activation loaded once
    /// for all of them), each row's result with exactly the bits of <see cref="WasmDot"/>. Null: the compiled
    /// matmul runs <see cref="WasmDot"/> row by row.</summary>
    internal virtual Wasm.WasmDotRows? WasmDotRows => null;

    /// <summary>Optional (float types): one row's dot with several activations at once in WebAssembly, each
    /// result with exactly the bits of <see cref="WasmDot"/>. Null: the compiled matmul runs tokens one by one.</summary>
    internal virtual Wasm.WasmDotTokens? WasmDotTokens => null;

    /// <summary>Checks a whole tensor once at load, for kernels that rely on a property of the data.</summary>
    public virtual void Validate(string tensor, ReadOnlySpan<byte> data) { }

    public abstract float Dot(ReadOnlySpan<byte> row, Activation x);

    /// <summary>Dot products of one weight row with several activations (batched prefill). Same bits as
    /// calling <see cref="Dot"/> for each: the row is only reused while it is in cache.</summary>
    public virtual void DotMany(ReadOnlySpan<byte> row, Activation[] xs, int count, Span<float> output, int stride, int rowIndex)
    {
        Span<float> four = stackalloc float[4];
        int t = 0;
        for (; t + 4 <= count; t += 4)
        {
            Dot4(row, xs[t], xs[t + 1], xs[t + 2], xs[t + 3], four);
            for (int k = 0; k < 4; k++) output[(t + k) * stride + rowIndex] = four[k];
        }
        for (; t < count; t++) output[t * stride + rowIndex] = Dot(row, xs[t]);
    }

    /// <summary>Prefill over two consecutive rows (each <paramref name="rowBytes"/> long, the first at
    /// <paramref name="rowIndex"/>): kernels override it to tile rows × tokens in registers. Same bits as
    /// <see cref="DotMany"/> on each row.</summary>
    public virtual void DotMany2(ReadOnlySpan<byte> rows, int rowBytes, Activation[] xs, int count, Span<float> output, int stride, int rowIndex)
    {
        DotMany(rows[..rowBytes], xs, count, output, stride, rowIndex);
        DotMany(rows.Slice(rowBytes, rowBytes), xs, count, output, stride, rowIndex + 1);
    }

    /// <summary>Prefill over four consecutive rows: each token's activation is read once for four rows, so a
    /// batch whose activations outgrow L1 streams them a quarter as often. False means the kernel has no such
    /// path for rows of this size (the caller then uses <see cref="DotMany2"/>). Same bits as <see cref="Dot"/>.</summary>
    public virtual bool DotManyRows4(ReadOnlySpan<byte> rows, int rowBytes, Activation[] xs, int count, Span<float> output, int stride, int rowIndex) => false;

    /// <summary>Prefill over rows [rowStart, rowEnd) and all <paramref name="count"/> tokens in one call, for kernels that
    /// lay out the batch's activations once per call (<see cref="TokenPairs"/>); returns the first row it did not do
    /// (rowStart: none). Same bits as <see cref="Dot"/>.</summary>
    public virtual int PrefillRows(ReadOnlySpan<byte> data, int rowBytes, Activation[] xs, int count, Span<float> output, int stride, int rowStart, int rowEnd) => rowStart;

    /// <summary>Prefill's prefetch of the four-row group after the one at <paramref name="row"/> (rows before
    /// <paramref name="rowEnd"/> only), issued before that group's tiles run. Without it the first touch of each group's
    /// weights stalled: AVX-512 Q4_0's unpack of four rows took 3.8 % of a 110M pp128 profile, 2.0 % with it; paired
    /// in-process runs (Zen 5, 110M pp128) gained 1–2 % on every format and ISA and lost on none.</summary>
    internal static void PrefetchNextGroup(ReadOnlySpan<byte> data, int rowBytes, int row, int rowEnd)
    {
        int next = row + 4, end = System.Math.Min(row + 8, rowEnd);
        if (next < end) IntegerDot.PrefetchToL2(data.Slice(next * rowBytes, (end - next) * rowBytes));
    }

    /// <summary>Whether decode should call <see cref="Dot4Rows"/> for rows of <paramref name="rowBytes"/>:
    /// the kernels that override it load the activation once per four rows and prefetch the rows ahead
    /// (measurements in docs/performance.md).</summary>
    public virtual bool PrefersFourRows(int rowBytes) => false;

    /// <summary>Dots of four consecutive rows (each <paramref name="rowBytes"/> long) with one activation
    /// (decode); kernels override it to load x once. Each result must equal <see cref="Dot"/>'s bits.</summary>
    public virtual void Dot4Rows(ReadOnlySpan<byte> rows, int rowBytes, Activation x, Span<float> results)
    {
        for (int k = 0; k < 4; k++) results[k] = Dot(rows.Slice(k * rowBytes, rowBytes), x);
    }

    /// <summary>Decode: output[r] = row r · x for rows [rowStart, rowEnd) of <paramref name="data"/> (rows of
    /// <paramref name="rowBytes"/>), four rows per pass where <see cref="PrefersFourRows"/> says so, else one at a
    /// time. Kernels override it to walk the whole range in one call; each result must equal <see cref="Dot"/>'s bits.</summary>
    public virtual void DecodeRows(ReadOnlySpan<byte> data, int rowBytes, Activation x, Span<float> output, int rowStart, int rowEnd)
    {
        if (PrefersFourRows(rowBytes))
        {
            Span<float> four = stackalloc float[4];
            for (; rowStart + 4 <= rowEnd; rowStart += 4)
            {
                Dot4Rows(data.Slice(rowStart * rowBytes, 4 * rowBytes), rowBytes, x, four);
                four.CopyTo(output[rowStart..]);
            }
        }
        for (int r = rowStart; r < rowEnd; r++) output[r] = Dot(data.Slice(r * rowBytes, rowBytes), x);
    }

    /// <summary>Throws unless rows [rowStart, rowEnd) lie inside <paramref name="data"/> and their outputs inside
    /// <paramref name="output"/> (for kernels that address them by pointer).</summary>
    protected static void CheckRange(ReadOnlySpan<byte> data, int rowBytes, Span<float> output, int rowStart, int rowEnd)
    {
        if (rowStart < 0 || rowStart > rowEnd || rowEnd > output.Length || rowBytes < 0 || (long)rowEnd * rowBytes > data.Length)
            throw new ArgumentOutOfRangeException(nameof(rowEnd), $"rows [{rowStart}, {rowEnd}) of {rowBytes} bytes do not fit {data.Length} bytes / {output.Length} outputs");
    }

    /// <summary>Throws unless every (token, row) output of a batch — output[token·stride + row] for tokens [0,
    /// <paramref name="count"/>) and rows [rowStart, rowEnd) — lies inside <paramref name="output"/> (for the prefill
    /// tiles, which write them by reference).</summary>
    internal static void CheckBatchRange(int count, Span<float> output, int stride, int rowStart, int rowEnd)
    {
        if ((long)count * stride > output.Length || rowEnd > stride || rowStart < 0) throw new ArgumentOutOfRangeException(nameof(output));
    }

    /// <summary>Four dots of one row (prefill); kernels override it to decode the row once. Each result
    /// must equal <see cref="Dot"/>'s bits.</summary>
    protected virtual void Dot4(ReadOnlySpan<byte> row, Activation a, Activation b, Activation c, Activation d, Span<float> results)
    {
        results[0] = Dot(row, a); results[1] = Dot(row, b); results[2] = Dot(row, c); results[3] = Dot(row, d);
    }

    /// <summary>Decodes the row into float chunks and accumulates its products with x.Values in
    /// the contract's lane order: the shared path for types without a dedicated dot.</summary>
    protected float DotByDequantizing(ReadOnlySpan<byte> row, Activation x, int blockSize, int bytesPerBlock)
    {
        const int Chunk = 256;
        int n = x.Length;
        Span<float> lanes = stackalloc float[Kernels.Lanes];
        lanes.Clear();
        Span<float> buffer = stackalloc float[Chunk];
        int blocksPerChunk = System.Math.Max(1, Chunk / blockSize);
        int elementsPerChunk = blocksPerChunk * blockSize;
        if (elementsPerChunk > Chunk) buffer = new float[elementsPerChunk]; // block wider than the stack chunk
        for (int start = 0; start < n; start += elementsPerChunk)
        {
            int count = System.Math.Min(elementsPerChunk, n - start);
            var part = buffer[..count];
            Dequantize(row.Slice(start / blockSize * bytesPerBlock, count / blockSize * bytesPerBlock), part);
            Kernels.AccumulateLanes(part, x.Values.Slice(start, count), lanes);
        }
        return Kernels.ReduceLanes(lanes);
    }
}

/// <summary>An input vector of a matmul, with its Q8_0 form made at most once.</summary>
internal sealed partial class Activation
{
    public const int Q8Block = 32;
    public Span<float> Values => _values.AsSpan();
    private readonly ArraySegment<float> _values; // on a cache line, as Q8: the float tiles load 32 or 64 bytes of it per step
    public int Length { get; }
    /// <summary>Q8_0 quants, one per value, and per 32-block the scale (rounded to F16 as GGUF stores
    /// it) and the scale times the block's quant sum (for types with an offset, Q4_1/Q5_1).</summary>
    public Span<sbyte> Q8 => _q8.AsSpan();
    private readonly ArraySegment<sbyte> _q8; // on a cache line: the AVX2 tiles load 32 bytes per block and token
    public float[] Q8Scales { get; }
    public float[] Q8ScaledSums { get; }
    /// <summary>Per 32-block, 8 × the sum of each group of 4 quants (Q4_0's AVX2 path feeds nibbles
    /// unsigned and subtracts these: Σ(n − 8)·x = Σn·x − 8·Σx, the same exact integers).</summary>
    public int[] Q8GroupSums8 { get; }
    /// <summary>The Q8_K form (K-quant weights), made by <see cref="EnsureQ8K"/>.</summary>
    public Q8KForm? Q8K { get; private set; }
    private bool _q8Ready, _q8kReady;

    public Activation(int length)
    {
        Length = length;
        // Pinned: a host's compiled kernels (Wasm.CompiledKernels) read them by address.
        _values = IO.CacheLines.Allocate<float>(length);
        int blocks = (length + Q8Block - 1) / Q8Block;
        _q8 = IO.CacheLines.Allocate<sbyte>(blocks * Q8Block);
        Q8Scales = GC.AllocateArray<float>(blocks, pinned: true);
        Q8ScaledSums = new float[blocks];
        Q8GroupSums8 = new int[blocks * 8];
    }

    /// <summary>Call after writing <see cref="Values"/>.</summary>
    public void Invalidate()
    {
        _q8Ready = _q8kReady = false;
        _halfScaledState = 0;
    }

    /// <summary>Whether xs[0..count) already hold every form <paramref name="kernel"/>'s dot reads.</summary>
    public static bool Ready(RowKernel kernel, Activation[] xs, int count)
    {
        bool q8 = kernel.UsesQ8Activation, q8k = kernel.UsesQ8KActivation;
        for (int t = 0; t < count && (q8 || q8k); t++)
            if ((q8 && !xs[t]._q8Ready) || (q8k && !xs[t]._q8kReady)) return false;
        return true;
    }

    public void EnsureQ8K()
    {
        if (_q8kReady) return;
        Q8K ??= new Q8KForm(Length);
        Q8K.Fill(Values);
        _q8kReady = true;
    }

    /// <summary>The Q8_0 form through the compiled kernel (<see cref="EmitQuantize"/>, same results), where a
    /// host installed one; false: the C# loop runs.</summary>
    private unsafe bool QuantizeCompiled()
    {
        Span<int> outputs = stackalloc int[4];
        fixed (float* values = Values)
        fixed (sbyte* quants = Q8)
        fixed (float* scales = Q8Scales)
        fixed (float* scaledSums = Q8ScaledSums)
        fixed (int* groupSums = Q8GroupSums8)
        fixed (int* o = outputs)
        {
            outputs[0] = (int)quants; outputs[1] = (int)scales; outputs[2] = (int)scaledSums; outputs[3] = (int)groupSums;
            return Wasm.CompiledKernels.TryCall(Wasm.Utility.QuantizeQ8, (int)values, Length / Q8Block, (int)o) is not null;
        }
    }

    public void EnsureQ8()
    {
        if (_q8Ready) return;
        if (Length % Q8Block != 0) throw new MicroLmException($"a quantized matmul needs a row length that is a multiple of {Q8Block}, got {Length}");
        if (QuantizeCompiled()) { _q8Ready = true; return; }
        if (IntegerDot.VectorBits >= 256) { Quantize256(); _q8Ready = true; return; }
        ref float values = ref MemoryMarshal.GetReference(Values);
        ref sbyte quants = ref MemoryMarshal.GetReference(Q8);
        Span<Vector128<int>> q = stackalloc Vector128<int>[8];
        for (int b = 0; b < Length / Q8Block; b++)
        {
            // Eight groups of four values, one Vector128 each. The largest |v| is found on the bit
            // patterns (for non-negative floats integer order is float order; a NaN compares largest),
            // so no float min/max semantics are involved; rounding is IEEE ties-to-even everywhere.
            ref float v = ref Unsafe.Add(ref values, b * Q8Block);
            var magnitude = Vector128.Create(0x7FFFFFFF);
            var largest = Vector128<int>.Zero;
            for (int g = 0; g < 8; g++)
                largest = Vector128.Max(largest, Vector128.LoadUnsafe(ref v, (nuint)(4 * g)).AsInt32() & magnitude);
            float amax = BitConverter.Int32BitsToSingle(System.Math.Max(System.Math.Max(largest[0], largest[1]), System.Math.Max(largest[2], largest[3])));
            float d = amax / 127f;
            float id = d != 0 ? 1f / d : 0f;
            var scale = Vector128.Create(id);
            int sum = 0;
            for (int g = 0; g < 8; g++)
            {
                q[g] = Vector128.ConvertToInt32(Vector128.Round(Vector128.LoadUnsafe(ref v, (nuint)(4 * g)) * scale)); // |q| ≤ 127
                int groupSum = Vector128.Sum(q[g]);
                Q8GroupSums8[b * 8 + g] = 8 * groupSum;
                sum += groupSum;
            }
            ref sbyte target = ref Unsafe.Add(ref quants, b * Q8Block);
            Vector128.Narrow(Vector128.Narrow(q[0], q[1]), Vector128.Narrow(q[2], q[3])).StoreUnsafe(ref target);
            Vector128.Narrow(Vector128.Narrow(q[4], q[5]), Vector128.Narrow(q[6], q[7])).StoreUnsafe(ref target, 16);
            float dh = (float)(Half)d;
            Q8Scales[b] = dh;
            Q8ScaledSums[b] = dh * sum;
        }
        _q8Ready = true;
    }

    /// <summary>The loop of <see cref="EnsureQ8"/> on 256-bit vectors (x86 AVX2): the same float operations per value
    /// (bit-pattern maximum, one division, one reciprocal, multiply, round half to even), and the group sums as
    /// exact integers by the pair sums of <see cref="IntegerDot"/> (1·q). Measured: 1.1 → ~0.4 ns per value.</summary>
    private void Quantize256()
    {
        ref float values = ref MemoryMarshal.GetReference(Values);
        ref sbyte quants = ref MemoryMarshal.GetReference(Q8);
        ref int groupSums = ref MemoryMarshal.GetArrayDataReference(Q8GroupSums8);
        var magnitude = Vector256.Create(0x7FFFFFFF);
        for (int b = 0; b < Length / Q8Block; b++)
        {
            ref float v = ref Unsafe.Add(ref values, b * Q8Block);
            var v0 = Vector256.LoadUnsafe(ref v); var v1 = Vector256.LoadUnsafe(ref v, 8);
            var v2 = Vector256.LoadUnsafe(ref v, 16); var v3 = Vector256.LoadUnsafe(ref v, 24);
            var largest8 = Vector256.Max(Vector256.Max(v0.AsInt32() & magnitude, v1.AsInt32() & magnitude), Vector256.Max(v2.AsInt32() & magnitude, v3.AsInt32() & magnitude));
            var largest = Vector128.Max(largest8.GetLower(), largest8.GetUpper());
            float amax = BitConverter.Int32BitsToSingle(System.Math.Max(System.Math.Max(largest[0], largest[1]), System.Math.Max(largest[2], largest[3])));
            float d = amax / 127f;
            float id = d != 0 ? 1f / d : 0f;
            var scale = Vector256.Create(id);
            var q01 = Vector256.Narrow(Vector256.ConvertToInt32(Vector256.Round(v0 * scale)), Vector256.ConvertToInt32(Vector256.Round(v1 * scale)));
            var q23 = Vector256.Narrow(Vector256.ConvertToInt32(Vector256.Round(v2 * scale)), Vector256.ConvertToInt32(Vector256.Round(v3 * scale)));
            var q = Vector256.Narrow(q01, q23); // |q| ≤ 127
            q.StoreUnsafe(ref Unsafe.Add(ref quants, b * Q8Block));
            var groups = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Vector256<byte>.One, q), Vector256<short>.One);
            (groups * 8).StoreUnsafe(ref Unsafe.Add(ref groupSums, b * 8));
            float dh = (float)(Half)d;
            Q8Scales[b] = dh;
            Q8ScaledSums[b] = dh * Vector256.Sum(groups);
        }
    }
    private float[]? _halfScaled;
    /// <summary>0: not made since the last <see cref="Invalidate"/>; 1: <see cref="HalfScaled"/> holds x·2^112; 2: not exact here.</summary>
    private int _halfScaledState;

    /// <summary>The values times 2^112, each exact, for F16 dots that read halves as v·2^-112 (see F16Kernel.Scaled);
    /// null unless <see cref="EnsureHalfScaled"/> made it since the values last changed, and null when some value
    /// is not finite or |x| ≥ 2^16 (x·2^112 would overflow: the F16 kernels then multiply as before).</summary>
    public float[]? HalfScaled => _halfScaledState == 1 ? _halfScaled : null;

    /// <summary>Makes <see cref="HalfScaled"/> (once per matmul input, before the threads split the rows).
    /// |x| &lt; 2^16 is tested on the bit patterns (a NaN or infinity has larger ones), so x·2^112 is at most the
    /// largest float and exact, subnormal x included (scaling up by a power of two loses no bits).</summary>
    public void EnsureHalfScaled()
    {
        if (_halfScaledState != 0) return;
        var scaled = _halfScaled ??= GC.AllocateArray<float>(Values.Length, pinned: true);
        ref float v = ref MemoryMarshal.GetReference(Values);
        ref float s = ref MemoryMarshal.GetArrayDataReference(scaled);
        const int Limit = 0x47800000; // bits of 2^16
        float factor = F16Kernel.TwoPow112;
        int i = 0, n = Length;
        var largest = Vector128<int>.Zero;
        for (; i + 4 <= n; i += 4)
        {
            var x = Vector128.LoadUnsafe(ref v, (nuint)i);
            largest = Vector128.Max(largest, x.AsInt32() & Vector128.Create(0x7FFFFFFF));
            (x * Vector128.Create(factor)).StoreUnsafe(ref s, (nuint)i);
        }
        bool exact = Vector128.LessThanAll(largest, Vector128.Create(Limit));
        for (; i < n; i++)
        {
            float x = Unsafe.Add(ref v, i);
            exact &= (BitConverter.SingleToInt32Bits(x) & 0x7FFFFFFF) < Limit;
            Unsafe.Add(ref s, i) = x * factor;
        }
        _halfScaledState = exact ? 1 : 2;
        _halfPairsReady = exact && Kernels.VectorBits == 256 && Avx2.IsSupported;
        if (_halfPairsReady) MakeHalfPairs(scaled);
    }

    private float[]? _halfPairs;
    private bool _halfPairsReady;

    /// <summary><see cref="HalfScaled"/> de-interleaved per 16 values, for the F16 decode loops of 256 bits (F16Kernel.Pairs),
    /// which take a row's 16 halves as 8 pairs in 32-bit lanes and convert the even and the odd halves apart: values 16g,
    /// 16g+2, …, 16g+14, then 16g+1, …, 16g+15, for the full groups of 16 (a tail is read from <see cref="Values"/>).
    /// Made with <see cref="HalfScaled"/> where 256-bit vectors are the widest in use; null otherwise (at 512 bits one widening
    /// load per 16 halves measured faster, see F16Kernel.DecodeRows), or when <see cref="HalfScaled"/> is null.</summary>
    public float[]? HalfPairs => _halfScaledState == 1 && _halfPairsReady ? _halfPairs : null;

    private void MakeHalfPairs(float[] scaled)
    {
        var pairs = _halfPairs ??= GC.AllocateArray<float>(Values.Length, pinned: true);
        ref float s = ref MemoryMarshal.GetArrayDataReference(scaled);
        ref float p = ref MemoryMarshal.GetArrayDataReference(pairs);
        int full = Length & ~15;
        for (int g = 0; g < full; g += 16)
        {
            var a = Vector256.LoadUnsafe(ref s, (nuint)g); var b = Vector256.LoadUnsafe(ref s, (nuint)g + 8);
            // Within each 128-bit half: a0 a2 b0 b2 | a4 a6 b4 b6 (even), a1 a3 b1 b3 | a5 a7 b5 b7 (odd); then 64-bit
            // pieces 0, 2, 1, 3 put them in index order.
            var even = Avx.Shuffle(a, b, 0b10_00_10_00).AsDouble();
            var odd = Avx.Shuffle(a, b, 0b11_01_11_01).AsDouble();
            Avx2.Permute4x64(even, 0b11_01_10_00).AsSingle().StoreUnsafe(ref p, (nuint)g);
            Avx2.Permute4x64(odd, 0b11_01_10_00).AsSingle().StoreUnsafe(ref p, (nuint)g + 8);
        }
    }
}
