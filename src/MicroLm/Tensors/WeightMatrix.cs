using System.Runtime.InteropServices;
using MicroLm.Gguf;
using MicroLm.Tensors.Quants;

namespace MicroLm.Tensors;

/// <summary>A 2-D weight read in place from the file: <see cref="Rows"/> rows of <see cref="Columns"/>
/// values each (ggml's ne1 × ne0), multiplied by activation vectors.</summary>
internal sealed class WeightMatrix
{
    public string Name { get; }
    public TensorTypeInfo Type { get; }
    public int Rows { get; }
    public int Columns { get; }
    public int RowBytes { get; }
    private readonly ReadOnlyMemory<byte> _data;
    private readonly RowKernel _kernel;

    public WeightMatrix(GgufFile file, GgufTensorInfo t)
    {
        Name = t.Name;
        Type = t.Type;
        if (t.Shape.Length is < 1 or > 2 && !(t.Shape.Length > 2 && t.Shape.Skip(2).All(d => d == 1)))
            throw new MicroLmException($"tensor '{t.Name}' has shape {t.ShapeText}; a matrix was expected");
        Columns = checked((int)t.Shape[0]);
        Rows = t.Shape.Length > 1 ? checked((int)t.Shape[1]) : 1;
        RowBytes = (int)t.Type.RowBytes(Columns);
        _kernel = t.Type.Kernel ?? throw new MicroLmException($"tensor '{t.Name}' has type {t.Type.Name}, which this runtime cannot compute with yet");
        _data = file.GetTensorData(t);
        _kernel.Validate(t.Name, _data.Span);
    }

    public bool UsesQ8Activation => _kernel.UsesQ8Activation;


    public ReadOnlySpan<byte> Row(int r) => _data.Span.Slice(r * RowBytes, RowBytes);

    /// <summary>Decodes row <paramref name="r"/> to floats (an embedding lookup).</summary>
    public void ReadRow(int r, Span<float> output)
    {
        if ((uint)r >= (uint)Rows) throw new MicroLmException($"row {r} is outside '{Name}' ({Rows} rows)");
        _kernel.Dequantize(Row(r), output[..Columns]);
    }

    /// <summary>output[t·Rows + r] = row r · xs[t], for rows [rowStart, rowEnd). The caller prepares the activations.</summary>
    public void MatMul(Activation[] xs, int count, Span<float> output, int rowStart, int rowEnd)
    {
        var data = _data.Span;
        if (Wasm.CompiledKernels.TryMatMul(this, data, _kernel.UsesQ8Activation, xs, count, output, rowStart, rowEnd)) return;
        if (count == 1)
        {
            // Decode: the kernel walks the row range in one call (DotMany's per-call setup was ~7 % of 110M-shape
            // F32 decode, and a call per four rows weighed as much on Pythia's 50,304 short classifier rows).
            _kernel.DecodeRows(data, RowBytes, xs[0], output, rowStart, rowEnd);
            return;
        }
        if (count > 1)
        {
            // Prefill, widest first: the kernel's whole-range path, then four rows, then two; the rest one at a time.
            rowStart = _kernel.PrefillRows(data, RowBytes, xs, count, output, Rows, rowStart, rowEnd);
            for (; rowStart + 4 <= rowEnd; rowStart += 4)
            {
                RowKernel.PrefetchNextGroup(data, RowBytes, rowStart, rowEnd);
                if (!_kernel.DotManyRows4(data.Slice(rowStart * RowBytes, 4 * RowBytes), RowBytes, xs, count, output, Rows, rowStart)) break;
            }
            for (; rowStart + 2 <= rowEnd; rowStart += 2)
                _kernel.DotMany2(data.Slice(rowStart * RowBytes, 2 * RowBytes), RowBytes, xs, count, output, Rows, rowStart);
        }
        for (int r = rowStart; r < rowEnd; r++)
            _kernel.DotMany(data.Slice(r * RowBytes, RowBytes), xs, count, output, Rows, r);
    }

    /// <summary>Makes the activation forms the weight's kernel reads for xs[start..end) (once per matmul, before the threads split the rows).</summary>
    public static void Prepare(WeightMatrix w, Activation[] xs, int start, int end)
    {
        for (int t = start; t < end; t++)
        {
            if (w._kernel.UsesQ8Activation) xs[t].EnsureQ8();
            if (w._kernel.UsesQ8KActivation) xs[t].EnsureQ8K();
        }
    }

    /// <summary><see cref="Prepare"/> for a matmul of one token (decode), which also reads the F16 decode form
    /// (prefill converts the rows and reads the values, and a host's compiled kernels read the values).</summary>
    public static void PrepareOne(WeightMatrix w, Activation[] xs)
    {
        Prepare(w, xs, 0, 1);
        if (w._kernel.UsesHalfScaledActivation && !Wasm.CompiledKernels.Active) xs[0].EnsureHalfScaled();
    }

    /// <summary>A 1-D F32 tensor (norm weights, biases) as a span over the file.</summary>
    public static ReadOnlyMemory<float> Vector(GgufFile file, GgufTensorInfo t, int length)
    {
        if (t.ElementCount != length) throw new MicroLmException($"tensor '{t.Name}' has {t.ElementCount} values, {length} expected");
        var f = new float[length];
        if (t.Type.Type == GgmlType.F32) MemoryMarshal.Cast<byte, float>(file.GetTensorData(t).Span).CopyTo(f);
        else (t.Type.Kernel ?? throw new MicroLmException($"tensor '{t.Name}' has unsupported type {t.Type.Name}"))
            .Dequantize(file.GetTensorData(t).Span, f);
        return f;
    }
}
