using System.Buffers.Binary;
using System.Text;
using MicroLm.Tensors;

namespace MicroLm.Gguf;

/// <summary>A parsed GGUF file over one contiguous read-only buffer: memory-mapped from a path, or a
/// caller's bytes. Every count, length and offset is checked against the bytes that remain before it
/// is used, so a hostile header fails with <see cref="GgufFormatException"/> and never causes a large
/// allocation or a long loop. Tensor bytes are spans into the buffer, never copied.</summary>
internal sealed class GgufFile : IDisposable
{
    public const uint Magic = 0x46554747; // "GGUF" read as little-endian u32
    public const int DefaultAlignment = 32;
    private const int MaxArrayNesting = 8;
    /// <summary>GGUF spec: a key is at most 2^16-1 bytes. Also bounds what a corrupt length can make us decode.</summary>
    private const int MaxKeyBytes = 65535;
    /// <summary>GGUF spec: a tensor name is at most 64 bytes (ggml's GGML_MAX_NAME; llama.cpp rejects longer ones).</summary>
    private const int MaxTensorNameBytes = 64;
    private const int InitialCapacity = 64;

    private readonly ReadOnlyMemory<byte> _buffer;
    private readonly IDisposable? _owner;
    private readonly Dictionary<string, int> _keyIndex;
    private readonly (string Key, GgufValue Value)[] _metadata;
    private readonly Dictionary<string, GgufTensorInfo> _tensorIndex;

    public int Version { get; }
    public int Alignment { get; }
    /// <summary>File offset of the tensor data section.</summary>
    public long DataOffset { get; }
    public long Length => _buffer.Length;
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }
    public IEnumerable<(string Key, GgufValue Value)> Metadata => _metadata;
    public int MetadataCount => _metadata.Length;
    /// <summary>The whole file.</summary>
    public ReadOnlyMemory<byte> Buffer => _buffer;

    /// <summary>Opens a file, memory-mapped where the platform allows (read into one buffer in the browser).</summary>
    public static GgufFile Open(string path)
    {
        if (string.IsNullOrEmpty(path)) throw new FileNotFoundException("no such file: (an empty path)");
        if (Directory.Exists(path)) throw new IOException($"{path} is a folder, not a file");
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"no such file: {path}", path);
        if (info.Length == 0) throw new GgufFormatException("file is empty", 0);
        if (info.Length > int.MaxValue) throw new GgufFormatException($"file is {info.Length} bytes; files over 2 GiB are not supported", 0);
        if (OperatingSystem.IsBrowser() || OperatingSystem.IsWasi())
            return new GgufFile(File.ReadAllBytes(path), null);
        var mapped = new MappedMemory(path);
        try { return new GgufFile(mapped.Memory, mapped); }
        catch { ((IDisposable)mapped).Dispose(); throw; }
    }

    /// <summary>Parses a GGUF image held by the caller (not copied; the caller keeps it alive and unchanged).</summary>
    public static GgufFile FromMemory(ReadOnlyMemory<byte> bytes) => new(bytes, null);

    private GgufFile(ReadOnlyMemory<byte> buffer, IDisposable? owner)
    {
        _buffer = buffer;
        _owner = owner;
        var r = new Reader(buffer.Span);

        if (buffer.Length < 8) throw new GgufFormatException($"file is {buffer.Length} bytes, too short for a GGUF header", 0);
        uint magic = r.U32();
        if (magic != Magic)
            throw new GgufFormatException($"not a GGUF file (magic bytes {Hex(buffer.Span[..4])}, expected \"GGUF\")", 0);
        uint version = r.U32();
        if (version is 0 or > 3)
        {
            uint swapped = BinaryPrimitives.ReverseEndianness(version);
            if (swapped is >= 1 and <= 3)
                throw new GgufFormatException($"big-endian GGUF (version {swapped}) is not supported; convert the file to little-endian", 4);
            throw new GgufFormatException($"unsupported GGUF version {version} (supported: 1, 2, 3)", 4);
        }
        Version = (int)version;
        int countSize = Version == 1 ? 4 : 8;

        long tensorCountAt = r.Position;
        long tensorCount = ReadCount(ref r, "tensor count");
        long kvCountAt = r.Position;
        long kvCount = ReadCount(ref r, "metadata count");
        // Smallest possible entries: key/name length + value type + 1 byte; name length + n_dims + type + offset.
        int minKv = countSize + 4 + 1, minTensor = countSize + 4 + 4 + 8;
        if (kvCount > (buffer.Length - r.Position) / minKv)
            throw new GgufFormatException($"metadata count {kvCount} cannot fit in the {buffer.Length - r.Position} bytes that remain", kvCountAt);
        if (tensorCount > (buffer.Length - r.Position) / minTensor)
            throw new GgufFormatException($"tensor count {tensorCount} cannot fit in the {buffer.Length - r.Position} bytes that remain", tensorCountAt);

        // Collections grow with the entries actually read, not with the claimed counts: a corrupt count that
        // still "fits" would otherwise allocate several times the file's size before the parse fails.
        var metadata = new List<(string, GgufValue)>((int)System.Math.Min(kvCount, InitialCapacity));
        _keyIndex = new Dictionary<string, int>((int)System.Math.Min(kvCount, InitialCapacity), StringComparer.Ordinal);
        for (int i = 0; i < kvCount; i++)
        {
            long keyAt = r.Position;
            string key = ReadString(ref r, "metadata key", MaxKeyBytes);
            string keyText = ForMessage(key);
            long typeAt = r.Position;
            uint type = r.U32();
            if (!GgufValueTypes.IsKnown(type))
                throw new GgufFormatException($"metadata '{keyText}' has unknown value type {type}", typeAt);
            var value = ReadValue(ref r, (GgufValueType)type, keyText, 0);
            if (!_keyIndex.TryAdd(key, i))
                throw new GgufFormatException($"duplicate metadata key '{keyText}'", keyAt);
            metadata.Add((key, value));
        }
        _metadata = [.. metadata];

        Alignment = DefaultAlignment;
        if (TryGet("general.alignment", out var alignValue))
        {
            long a = alignValue.Type == GgufValueType.UInt64
                ? ((ulong)alignValue.ToObject() is var u && u <= int.MaxValue ? (long)u : -1)
                : alignValue.IsInteger ? alignValue.AsInt64() : -1;
            if (a <= 0 || a > 1 << 30 || (a & (a - 1)) != 0)
                throw new GgufFormatException($"general.alignment must be a positive power of two, found {alignValue.ToDisplayString()}", alignValue.Offset);
            Alignment = (int)a;
        }

        var tensorList = new List<GgufTensorInfo>((int)System.Math.Min(tensorCount, InitialCapacity));
        _tensorIndex = new Dictionary<string, GgufTensorInfo>((int)System.Math.Min(tensorCount, InitialCapacity), StringComparer.Ordinal);
        for (int i = 0; i < tensorCount; i++)
        {
            long infoAt = r.Position;
            string name = ReadString(ref r, "tensor name", MaxTensorNameBytes);
            string nameText = ForMessage(name);
            long dimsAt = r.Position;
            uint nDims = r.U32();
            if (nDims > 4) throw new GgufFormatException($"tensor '{nameText}' has {nDims} dimensions; at most 4 are allowed", dimsAt);
            var shape = new long[nDims];
            long elements = 1;
            for (int d = 0; d < nDims; d++)
            {
                long at = r.Position;
                long ne = Version == 1 ? r.U32() : r.I64();
                if (ne < 0) throw new GgufFormatException($"tensor '{nameText}' has negative dimension {ne}", at);
                if (ne != 0 && elements > long.MaxValue / ne)
                    throw new GgufFormatException($"tensor '{nameText}' element count overflows", at);
                elements *= ne;
                shape[d] = ne;
            }
            long typeAt = r.Position;
            uint typeId = r.U32();
            var typeInfo = TensorTypes.TryGet(typeId)
                ?? throw new GgufFormatException($"tensor '{nameText}' has unknown tensor type id {typeId}", typeAt);
            long offsetAt = r.Position;
            ulong offset = r.U64();
            long ne0 = nDims > 0 ? shape[0] : 1;
            if (ne0 % typeInfo.BlockSize != 0)
                throw new GgufFormatException($"tensor '{nameText}': row length {ne0} is not a multiple of {typeInfo.Name}'s block size {typeInfo.BlockSize}", dimsAt);
            long rows = ne0 == 0 ? 0 : elements / ne0;
            // Blocks per row are checked before multiplying by the block's bytes: for ne0 near 2^62 the
            // product wraps around in 64 bits (to 0 for F32 [2^62]) and would pass the size check.
            long blocks = ne0 / typeInfo.BlockSize;
            if (blocks > buffer.Length / typeInfo.BytesPerBlock)
                throw new GgufFormatException($"tensor '{nameText}' ({typeInfo.Name} {FormatShape(shape)}) needs more bytes than the file holds", dimsAt);
            long rowBytes = blocks * typeInfo.BytesPerBlock;
            if (rows != 0 && rowBytes > buffer.Length / rows)
                throw new GgufFormatException($"tensor '{nameText}' ({typeInfo.Name} {FormatShape(shape)}) needs more bytes than the file holds", dimsAt);
            if (offset > (ulong)buffer.Length)
                throw new GgufFormatException($"tensor '{nameText}' data offset {offset} is past the end of the file", offsetAt);
            if (offset % (ulong)Alignment != 0)
                throw new GgufFormatException($"tensor '{nameText}' data offset {offset} is not a multiple of the alignment {Alignment}", offsetAt);
            var info = new GgufTensorInfo
            {
                Name = name, Type = typeInfo, Shape = shape, Offset = (long)offset, ByteSize = rowBytes * rows, InfoOffset = infoAt,
            };
            if (!_tensorIndex.TryAdd(name, info))
                throw new GgufFormatException($"duplicate tensor name '{nameText}'", infoAt);
            tensorList.Add(info);
        }

        var tensors = tensorList.ToArray();
        long headerEnd = r.Position;
        DataOffset = (headerEnd + Alignment - 1) / Alignment * Alignment;
        if (tensorCount > 0)
        {
            if (DataOffset > buffer.Length)
                throw new GgufFormatException($"file ends before the tensor data section (which starts at byte {DataOffset})", buffer.Length);
            long dataLength = buffer.Length - DataOffset;
            var byOffset = (GgufTensorInfo[])tensors.Clone();
            Array.Sort(byOffset, (a, b) => a.Offset.CompareTo(b.Offset));
            long previousEnd = 0;
            string? previousName = null;
            foreach (var t in byOffset)
            {
                if (t.ByteSize > dataLength - t.Offset)
                    throw new GgufFormatException($"tensor '{ForMessage(t.Name)}' ({t.Type.Name} {t.ShapeText}, {t.ByteSize} bytes at data offset {t.Offset}) runs past the end of the file; the file may be truncated", DataOffset + t.Offset);
                if (t.ByteSize > 0 && t.Offset < previousEnd)
                    throw new GgufFormatException($"tensor '{ForMessage(t.Name)}' overlaps tensor '{ForMessage(previousName!)}'", DataOffset + t.Offset);
                if (t.ByteSize > 0) { previousEnd = t.Offset + t.ByteSize; previousName = t.Name; }
            }
        }
        Tensors = tensors;
    }

    private long ReadCount(ref Reader r, string what)
    {
        long at = r.Position;
        if (Version == 1) return r.U32();
        ulong n = r.U64();
        if (n > int.MaxValue) throw new GgufFormatException($"{what} {n} is impossibly large", at);
        return (long)n;
    }

    private string ReadString(ref Reader r, string what, int maxBytes)
    {
        long at = r.Position;
        long len = Version == 1 ? r.U32() : (long)System.Math.Min(r.U64(), long.MaxValue);
        if (len > maxBytes && len <= r.Remaining)
            throw new GgufFormatException($"{what} length {len} exceeds the GGUF limit of {maxBytes} bytes", at);
        if (len > r.Remaining)
            throw new GgufFormatException($"{what} length {len} exceeds the {r.Remaining} bytes that remain", at);
        var bytes = r.Take((int)len, what);
        // Keys and names are UTF-8 (keys ASCII) by the spec. Checked first because decoding invalid UTF-8
        // with replacement characters allocates ~15 bytes per input byte in .NET; a corrupt length that
        // swallows binary data would otherwise cost 15x its size before the parse fails.
        if (!System.Text.Unicode.Utf8.IsValid(bytes))
            throw new GgufFormatException($"{what} is not valid UTF-8", at);
        return Encoding.UTF8.GetString(bytes);
    }

    /// <summary>Validates a value's extent and returns a view of it; arrays are walked, not copied.</summary>
    private GgufValue ReadValue(ref Reader r, GgufValueType type, string key, int depth)
    {
        long at = r.Position;
        switch (type)
        {
            case GgufValueType.String:
                SkipString(ref r, key);
                return new GgufValue(_buffer, Version, type, (int)at);
            case GgufValueType.Array:
                if (depth >= MaxArrayNesting) throw new GgufFormatException($"metadata '{key}': arrays nested deeper than {MaxArrayNesting}", at);
                uint elementType = r.U32();
                if (!GgufValueTypes.IsKnown(elementType))
                    throw new GgufFormatException($"metadata '{key}': array of unknown value type {elementType}", at);
                long countAt = r.Position;
                long count = Version == 1 ? r.U32() : (long)System.Math.Min(r.U64(), long.MaxValue);
                var et = (GgufValueType)elementType;
                int size = GgufValueTypes.FixedSize(et);
                int minSize = size != 0 ? size : et == GgufValueType.String ? (Version == 1 ? 4 : 8) : (Version == 1 ? 8 : 12);
                if (count > r.Remaining / minSize)
                    throw new GgufFormatException($"metadata '{key}': array of {count} {et} cannot fit in the {r.Remaining} bytes that remain", countAt);
                int start = r.Position;
                if (size != 0) r.Take((int)count * size, key);
                else if (et == GgufValueType.String) for (long i = 0; i < count; i++) SkipString(ref r, key);
                else for (long i = 0; i < count; i++) ReadValue(ref r, GgufValueType.Array, key, depth + 1); // (type, count, items), no tag
                return new GgufValue(_buffer, Version, type, start, et, count);
            default:
                r.Take(GgufValueTypes.FixedSize(type), key);
                return new GgufValue(_buffer, Version, type, (int)at);
        }
    }

    private void SkipString(ref Reader r, string key)
    {
        long at = r.Position;
        long len = Version == 1 ? r.U32() : (long)System.Math.Min(r.U64(), long.MaxValue);
        if (len > r.Remaining)
            throw new GgufFormatException($"metadata '{key}': string length {len} exceeds the {r.Remaining} bytes that remain", at);
        r.Take((int)len, key);
    }

    // ---- lookups ----

    public bool ContainsKey(string key) => _keyIndex.ContainsKey(key);

    public bool TryGet(string key, out GgufValue value)
    {
        if (_keyIndex.TryGetValue(key, out int i)) { value = _metadata[i].Value; return true; }
        value = default;
        return false;
    }

    public GgufValue Get(string key) => TryGet(key, out var v) ? v
        : throw new KeyNotFoundException($"GGUF metadata key '{key}' is missing");

    public string? GetString(string key) => TryGet(key, out var v) ? v.AsString() : null;
    public long? GetInt(string key) => TryGet(key, out var v) ? v.AsInt64() : null;
    public float? GetFloat(string key) => TryGet(key, out var v) ? v.AsSingle() : null;
    public bool? GetBool(string key) => TryGet(key, out var v) ? v.AsBool() : null;

    public string? Architecture => GetString("general.architecture");

    public GgufTensorInfo? FindTensor(string name) => _tensorIndex.GetValueOrDefault(name);

    /// <summary>A tensor's bytes, in place.</summary>
    public ReadOnlyMemory<byte> GetTensorData(GgufTensorInfo tensor) =>
        _buffer.Slice((int)(DataOffset + tensor.Offset), (int)tensor.ByteSize);

    public long ParameterCount => Tensors.Sum(t => t.ElementCount);

    /// <summary>Throws if a memory-mapped file has been truncated or rewritten since it was opened (see
    /// <see cref="MappedMemory.CheckUnchanged"/>); nothing for bytes held in memory.</summary>
    internal void CheckUnchanged() => (_owner as MappedMemory)?.CheckUnchanged();

    public void Dispose() => _owner?.Dispose();

    internal static string FormatShape(long[] shape) => "[" + string.Join(", ", shape) + "]";

    private static string Hex(ReadOnlySpan<byte> b) => Convert.ToHexString(b);

    /// <summary>A key or tensor name as it may appear in an error message: control characters escaped
    /// (a name from a hostile file must not break the one-line error) and long names cut short.
    /// Returns <paramref name="s"/> itself when it needs neither.</summary>
    internal static string ForMessage(string s)
    {
        const int MaxChars = 80;
        bool clean = s.Length <= MaxChars;
        foreach (char c in s) if (char.IsControl(c) || c is '\u2028' or '\u2029') { clean = false; break; }
        if (clean) return s;
        var sb = new StringBuilder();
        foreach (char c in s.AsSpan(0, System.Math.Min(s.Length, MaxChars)))
        {
            if (c == '\n') sb.Append("\\n");
            else if (c == '\t') sb.Append("\\t");
            else if (c == '\r') sb.Append("\\r");
            else if (char.IsControl(c) || c is '\u2028' or '\u2029') sb.Append($"\\u{(int)c:x4}");
            else sb.Append(c);
        }
        if (s.Length > MaxChars) sb.Append($"... ({s.Length} chars)");
        return sb.ToString();
    }

    /// <summary>Bounds-checked little-endian cursor.</summary>
    private ref struct Reader(ReadOnlySpan<byte> span)
    {
        private readonly ReadOnlySpan<byte> _span = span;
        public int Position;
        public readonly long Remaining => _span.Length - Position;

        public ReadOnlySpan<byte> Take(int n, string what = "value")
        {
            if (n < 0 || n > _span.Length - Position)
                throw new GgufFormatException($"file ends inside {what} ({n} bytes needed, {_span.Length - Position} remain)", Position);
            var s = _span.Slice(Position, n);
            Position += n;
            return s;
        }

        public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));
        public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));
        public long I64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));
    }
}
