using MicroLm.Gguf;
using MicroLm.Tensors;
using MicroLm.Tensors.Quants;

namespace MicroLm.Quantization;

/// <summary>One tensor's plan and outcome, reported as the quantizer goes.</summary>
internal sealed record QuantizedTensor(int Index, int Count, string Name, long[] Shape, GgmlType From, GgmlType To, long BytesBefore, long BytesAfter);

/// <summary>Writes a GGUF file with every tensor converted as llama-quantize converts it for a preset:
/// metadata carried over (general.quantization_version and general.file_type set, split keys dropped),
/// tensors in llama.cpp's order (non-layer tensors, then by layer, each group by name), types chosen by
/// <see cref="TensorTypeRules"/>, blocks encoded by <see cref="Quantizer"/>. Rows are encoded in parallel;
/// each row's bytes depend only on its own floats, so any thread count gives the same file.</summary>
internal static class ModelQuantizer
{
    public const uint QuantizationVersion = 2;

    public sealed record Options
    {
        public int Threads { get; init; } = 1;
        /// <summary>Allow converting tensors that are already quantized (their rounding compounds).</summary>
        public bool AllowRequantize { get; init; }
        public Action<QuantizedTensor>? Progress { get; init; }
        public Action<string>? Warning { get; init; }
    }

    /// <summary>Quantizes <paramref name="input"/> into a GGUF writer (nothing is written to disk here).</summary>
    public static GgufWriter Quantize(GgufFile input, QuantPreset preset, Options options)
    {
        string arch = input.Architecture ?? throw new MicroLmException("the input file has no general.architecture");
        int layers = (int)(input.GetInt($"{arch}.block_count") ?? 0);
        int heads = FirstInt(input, $"{arch}.attention.head_count");
        int kvHeads = input.ContainsKey($"{arch}.attention.head_count_kv") ? FirstInt(input, $"{arch}.attention.head_count_kv") : heads;

        var ordered = input.Tensors.OrderBy(t => Layer(t.Name)).ThenBy(t => t.Name, StringComparer.Ordinal).ToList();
        var rules = new TensorTypeRules(preset, arch, layers, heads, kvHeads, ordered.Select(t => t.Name).ToList());
        var targets = ordered.Select(t => rules.Choose(t.Name, t.Shape, t.Type.Type)).ToList();
        foreach (var f in rules.Fallbacks) options.Warning?.Invoke(f);

        // Refuse before any work if a quantized tensor would be converted again.
        if (!options.AllowRequantize)
            for (int i = 0; i < ordered.Count; i++)
            {
                var from = ordered[i].Type.Type;
                if (from != targets[i] && !IsFloat(from))
                    throw new MicroLmException(
                        $"tensor '{ordered[i].Name}' is already {ordered[i].Type.Name}; converting it to {TensorTypes.Get(targets[i]).Name} " +
                        "would round already-rounded values and cannot reproduce a quantization of the original weights " +
                        "(quantize from the F32/F16/BF16 file, or pass --allow-requantize)");
            }

        var w = new GgufWriter();
        foreach (var (key, value) in input.Metadata)
        {
            if (key is "general.quantization_version" or "general.file_type" or "split.no" or "split.count" or "split.tensors.count") continue;
            w.Add(key, value.Type, value.ToObject());
        }
        w.Add("general.quantization_version", QuantizationVersion);
        w.Add("general.file_type", (uint)preset.FileType);

        for (int i = 0; i < ordered.Count; i++)
        {
            var t = ordered[i];
            var to = targets[i];
            var source = input.GetTensorData(t);
            byte[] data = t.Type.Type == to ? source.ToArray() : Convert(t, source.Span, to, options.Threads);
            w.AddTensor(t.Name, to, t.Shape, data);
            options.Progress?.Invoke(new QuantizedTensor(i + 1, ordered.Count, t.Name, t.Shape, t.Type.Type, to, t.ByteSize, data.LongLength));
        }
        return w;
    }

    private static bool IsFloat(GgmlType t) => t is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16;

    private static int FirstInt(GgufFile f, string key)
    {
        if (!f.TryGet(key, out var v)) return 0;
        if (v.Type == GgufValueType.Array) return v.Elements().Select(e => (int)e.AsInt64()).FirstOrDefault();
        return (int)v.AsInt64();
    }

    /// <summary>The layer of "blk.N.…" (−1 otherwise), as llama.cpp sorts its weights.</summary>
    private static int Layer(string name)
    {
        if (!name.StartsWith("blk.", StringComparison.Ordinal)) return -1;
        int end = name.IndexOf('.', 4);
        return end > 4 && int.TryParse(name.AsSpan(4, end - 4), System.Globalization.NumberStyles.Integer,
            System.Globalization.CultureInfo.InvariantCulture, out int layer) ? layer : -1;
    }

    /// <summary>Decodes the rows to F32 (exactly, for F16/BF16) and encodes them in <paramref name="to"/>,
    /// in chunks of rows spread over threads.</summary>
    private static byte[] Convert(GgufTensorInfo t, ReadOnlySpan<byte> source, GgmlType to, int threads)
    {
        var fromKernel = t.Type.Kernel ?? throw new MicroLmException($"tensor '{t.Name}': cannot decode {t.Type.Name}");
        int columns = checked((int)t.Columns);
        long rows = t.Rows;
        long inRow = t.Type.RowBytes(columns);
        var toInfo = TensorTypes.Get(to);
        long outRow = toInfo.RowBytes(columns);
        var output = new byte[checked(rows * outRow)];
        // At least 16K values per chunk, as llama.cpp splits its work; the split never changes the bytes.
        long rowsPerChunk = System.Math.Max(1, (16384 + columns - 1) / columns);
        long chunks = (rows + rowsPerChunk - 1) / rowsPerChunk;
        var src = source.ToArray(); // spans cannot cross into the parallel body
        void Chunk(long c)
        {
            long first = c * rowsPerChunk, count = System.Math.Min(rowsPerChunk, rows - first);
            var floats = new float[count * columns];
            for (long r = 0; r < count; r++)
                fromKernel.Dequantize(src.AsSpan(checked((int)((first + r) * inRow)), (int)inRow), floats.AsSpan((int)(r * columns), columns));
            var bytes = Quantizer.Quantize(to, floats, columns);
            bytes.CopyTo(output.AsSpan(checked((int)(first * outRow))));
        }
        if (threads <= 1 || chunks == 1 || OperatingSystem.IsBrowser())
            for (long c = 0; c < chunks; c++) Chunk(c);
        else
            Parallel.For(0L, chunks, new ParallelOptions { MaxDegreeOfParallelism = threads }, Chunk);
        return output;
    }
}
