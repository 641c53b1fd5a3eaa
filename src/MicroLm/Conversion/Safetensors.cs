using System.Buffers.Binary;
using System.Text.Json;
using MicroLm.Gguf;

namespace MicroLm.Conversion;

/// <summary>One tensor of a safetensors file: dtype, shape (outermost first, as PyTorch) and its bytes
/// in place in the mapped file.</summary>
internal sealed record SafetensorsTensor(string Name, string DType, long[] Shape, long Offset, long Length, SafetensorsFile File)
{
    public long Elements => Shape.Aggregate(1L, (a, d) => a * d);
    public ReadOnlySpan<byte> Bytes => File.Data.Span.Slice((int)Offset, (int)Length);

    /// <summary>The values as F32 (F32 copied, F16 and BF16 widened exactly).</summary>
    public float[] ToFloats()
    {
        var src = Bytes;
        var dst = new float[Elements];
        switch (DType)
        {
            case "F32":
                for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadSingleLittleEndian(src[(4 * i)..]);
                break;
            case "F16":
                for (int i = 0; i < dst.Length; i++) dst[i] = (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(src[(2 * i)..]));
                break;
            case "BF16":
                for (int i = 0; i < dst.Length; i++) dst[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(src[(2 * i)..]) << 16);
                break;
            default: throw new MicroLmException($"tensor '{Name}' has dtype {DType}, which cannot be converted (F32, F16 and BF16 can)");
        }
        return dst;
    }
}

/// <summary>A safetensors file, memory-mapped and checked as strictly as the GGUF reader: an 8-byte
/// little-endian header length that fits in the file (and at most 100 MiB), a JSON object of
/// name → {dtype, shape, data_offsets}, known dtypes, shape × element size = byte length, offsets inside
/// the data and covering it without overlap or gap. Nothing is allocated from a claimed size before it
/// is checked against the file.</summary>
internal sealed class SafetensorsFile : IDisposable
{
    public const long MaxHeader = 100L << 20;
    private static readonly Dictionary<string, int> DTypeSizes = new(StringComparer.Ordinal)
    {
        ["F64"] = 8, ["F32"] = 4, ["F16"] = 2, ["BF16"] = 2, ["I64"] = 8, ["I32"] = 4, ["I16"] = 2, ["I8"] = 1,
        ["U64"] = 8, ["U32"] = 4, ["U16"] = 2, ["U8"] = 1, ["BOOL"] = 1, ["F8_E4M3"] = 1, ["F8_E5M2"] = 1,
    };

    private readonly IDisposable? _owner;
    public string Path { get; }
    public ReadOnlyMemory<byte> Data { get; }  // the whole file
    public IReadOnlyDictionary<string, SafetensorsTensor> Tensors { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    private SafetensorsFile(string path, ReadOnlyMemory<byte> data, IDisposable? owner)
    {
        Path = path; Data = data; _owner = owner;
        try
        {
            var (entries, metadata, dataStart) = Parse(path, data);
            Tensors = entries.ToDictionary(e => e.Name, e => new SafetensorsTensor(e.Name, e.DType, e.Shape, dataStart + e.Begin, e.End - e.Begin, this), StringComparer.Ordinal);
            Metadata = metadata;
        }
        catch { owner?.Dispose(); throw; }
    }

    public static SafetensorsFile Open(string path)
    {
        long length = new FileInfo(path).Length;
        if (length < 8) throw new MicroLmException($"{path}: not a safetensors file ({length} bytes, the header length alone needs 8)");
        if (length > int.MaxValue) throw new MicroLmException($"{path}: {length:N0} bytes; files over 2 GiB are not supported");
        var mapped = new MappedMemory(path); // its length is the open handle's
        if (mapped.Memory.Length < 8)
        {
            ((IDisposable)mapped).Dispose();
            throw new MicroLmException($"{path}: not a safetensors file (the header length alone needs 8 bytes)");
        }
        return new SafetensorsFile(path, mapped.Memory, mapped);
    }

    public static SafetensorsFile FromMemory(string name, ReadOnlyMemory<byte> bytes)
    {
        if (bytes.Length < 8) throw new MicroLmException($"{name}: not a safetensors file ({bytes.Length} bytes, the header length alone needs 8)");
        return new SafetensorsFile(name, bytes, null);
    }

    private static (List<(string Name, string DType, long[] Shape, long Begin, long End)>, Dictionary<string, string>, long) Parse(string path, ReadOnlyMemory<byte> data)
    {
        var span = data.Span;
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(span);
        if (headerLength > (ulong)(span.Length - 8))
            throw new MicroLmException($"{path}: header length {headerLength:N0} is past the end of the {span.Length:N0}-byte file (truncated or not safetensors)");
        if ((long)headerLength > MaxHeader) throw new MicroLmException($"{path}: header length {headerLength:N0} is over the 100 MiB limit");
        long dataStart = 8 + (long)headerLength, dataLength = span.Length - dataStart;
        JsonDocument doc;
        try { doc = JsonDocument.Parse(data.Slice(8, (int)headerLength), new JsonDocumentOptions { MaxDepth = 8 }); }
        catch (JsonException e) { throw new MicroLmException($"{path}: the header is not valid JSON ({e.Message})"); }
        using var _ = doc;
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new MicroLmException($"{path}: the header is not a JSON object");
        HfCheckpoint.CheckText(doc.RootElement, $"{path}: the header");
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var names = new HashSet<string>(StringComparer.Ordinal);
        var pending = new List<(string Name, string DType, long[] Shape, long Begin, long End)>();
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            if (p.Name == "__metadata__")
            {
                if (p.Value.ValueKind != JsonValueKind.Object) throw new MicroLmException($"{path}: __metadata__ is not an object");
                foreach (var m in p.Value.EnumerateObject())
                    metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : throw new MicroLmException($"{path}: __metadata__ value '{m.Name}' is not a string");
                continue;
            }
            var t = p.Value;
            string where = $"{path}: tensor '{p.Name}'";
            if (t.ValueKind != JsonValueKind.Object) throw new MicroLmException($"{where} is not an object");
            if (!t.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String) throw new MicroLmException($"{where} has no dtype");
            string dtype = dt.GetString()!;
            if (!DTypeSizes.TryGetValue(dtype, out int size)) throw new MicroLmException($"{where} has unknown dtype '{dtype}'");
            if (!t.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array || sh.GetArrayLength() > 8)
                throw new MicroLmException($"{where} has no valid shape");
            var shape = new long[sh.GetArrayLength()];
            long elements = 1;
            int i = 0;
            foreach (var d in sh.EnumerateArray())
            {
                if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long v) || v < 0 || v > dataLength)
                    throw new MicroLmException($"{where} has an invalid dimension in its shape");
                shape[i++] = v;
                elements = v == 0 ? 0 : elements > dataLength / v ? long.MaxValue : elements * v;
            }
            if (!t.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
                throw new MicroLmException($"{where} has no data_offsets [begin, end]");
            long begin = off[0].TryGetInt64(out long b) ? b : -1, end = off[1].TryGetInt64(out long e2) ? e2 : -1;
            if (begin < 0 || end < begin || end > dataLength)
                throw new MicroLmException($"{where}: data_offsets [{off[0]}, {off[1]}] are outside the {dataLength:N0} bytes of data");
            if (elements == long.MaxValue || elements * size != end - begin)
                throw new MicroLmException($"{where}: shape [{string.Join(", ", shape)}] of {dtype} needs {(elements == long.MaxValue ? "more" : (elements * size).ToString("N0"))} bytes, data_offsets give {end - begin:N0}");
            if (!names.Add(p.Name)) throw new MicroLmException($"{where} appears twice");
            pending.Add((p.Name, dtype, shape, begin, end));
        }
        // The data must be covered exactly: sorted by offset, each tensor starts where the previous ended.
        long at = 0;
        foreach (var x in pending.OrderBy(x => x.Begin).ThenBy(x => x.End))
        {
            if (x.Begin < at) throw new MicroLmException($"{path}: tensor '{x.Name}' overlaps another tensor's bytes");
            if (x.Begin > at) throw new MicroLmException($"{path}: bytes {at:N0}..{x.Begin:N0} of the data belong to no tensor");
            at = x.End;
        }
        if (at != dataLength) throw new MicroLmException($"{path}: the file has {dataLength - at:N0} bytes after the last tensor");
        return (pending, metadata, dataStart);
    }

    public void Dispose() => _owner?.Dispose();
}
