using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace MicroLm.Gguf;

/// <summary>A metadata value, read in place from the file's bytes. The parser has already checked
/// that it lies inside the buffer, so accessors only interpret bytes.</summary>
internal readonly struct GgufValue
{
    private readonly ReadOnlyMemory<byte> _buffer;
    private readonly int _offset;     // where the value's payload starts (after type tags and counts)
    private readonly int _version;

    public GgufValueType Type { get; }
    /// <summary>For arrays: the element type.</summary>
    public GgufValueType ElementType { get; }
    /// <summary>For arrays: the element count; 1 otherwise.</summary>
    public long Count { get; }
    /// <summary>Byte offset of the payload in the file.</summary>
    public long Offset => _offset;

    internal GgufValue(ReadOnlyMemory<byte> buffer, int version, GgufValueType type, int offset,
        GgufValueType elementType = GgufValueType.UInt8, long count = 1)
    {
        _buffer = buffer; _version = version; Type = type; _offset = offset; ElementType = elementType; Count = count;
    }

    private ReadOnlySpan<byte> Bytes => _buffer.Span[_offset..];

    public bool IsInteger => Type is GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.UInt16
        or GgufValueType.Int16 or GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.UInt64 or GgufValueType.Int64;

    /// <summary>Any integer type as a 64-bit signed value (u64 above long.MaxValue is an error).</summary>
    public long AsInt64()
    {
        var b = Bytes;
        return Type switch
        {
            GgufValueType.UInt8 => b[0],
            GgufValueType.Int8 => (sbyte)b[0],
            GgufValueType.UInt16 => BinaryPrimitives.ReadUInt16LittleEndian(b),
            GgufValueType.Int16 => BinaryPrimitives.ReadInt16LittleEndian(b),
            GgufValueType.UInt32 => BinaryPrimitives.ReadUInt32LittleEndian(b),
            GgufValueType.Int32 => BinaryPrimitives.ReadInt32LittleEndian(b),
            GgufValueType.UInt64 => BinaryPrimitives.ReadUInt64LittleEndian(b) is var u && u <= long.MaxValue
                ? (long)u : throw new GgufFormatException("u64 value does not fit in a signed 64-bit integer", _offset),
            GgufValueType.Int64 => BinaryPrimitives.ReadInt64LittleEndian(b),
            GgufValueType.Bool => b[0],
            _ => throw new GgufFormatException($"expected an integer value, found {Type}", _offset),
        };
    }

    /// <summary>The raw 32-bit pattern of a u32/i32 (so 0xFFFFFFFF stays -1 or 4294967295 as the caller wishes).</summary>
    public uint AsUInt32Bits() => Type is GgufValueType.UInt32 or GgufValueType.Int32
        ? BinaryPrimitives.ReadUInt32LittleEndian(Bytes)
        : (uint)AsInt64();

    public double AsDouble() => Type switch
    {
        GgufValueType.Float32 => BinaryPrimitives.ReadSingleLittleEndian(Bytes),
        GgufValueType.Float64 => BinaryPrimitives.ReadDoubleLittleEndian(Bytes),
        _ when IsInteger => AsInt64(),
        _ => throw new GgufFormatException($"expected a number, found {Type}", _offset),
    };

    public float AsSingle() => Type == GgufValueType.Float32
        ? BinaryPrimitives.ReadSingleLittleEndian(Bytes)
        : (float)AsDouble();

    public bool AsBool() => Type == GgufValueType.Bool ? Bytes[0] != 0
        : IsInteger ? AsInt64() != 0
        : throw new GgufFormatException($"expected a bool, found {Type}", _offset);

    public string AsString()
    {
        if (Type != GgufValueType.String) throw new GgufFormatException($"expected a string, found {Type}", _offset);
        return ReadStringAt(_offset, out _);
    }

    /// <summary>The UTF-8 bytes of a string value, in place.</summary>
    public ReadOnlySpan<byte> AsUtf8()
    {
        if (Type != GgufValueType.String) throw new GgufFormatException($"expected a string, found {Type}", _offset);
        int len = StringLength(_offset, out int header);
        return _buffer.Span.Slice(_offset + header, len);
    }

    /// <summary>A numeric array's elements as a span over the file bytes (no copy).</summary>
    public ReadOnlySpan<T> AsSpan<T>() where T : unmanaged
    {
        if (Type != GgufValueType.Array) throw new GgufFormatException($"expected an array, found {Type}", _offset);
        int size = GgufValueTypes.FixedSize(ElementType);
        if (size == 0 || size != System.Runtime.CompilerServices.Unsafe.SizeOf<T>())
            throw new GgufFormatException($"array of {ElementType} cannot be read as {typeof(T).Name}", _offset);
        return MemoryMarshal.Cast<byte, T>(_buffer.Span.Slice(_offset, checked((int)Count * size)));
    }

    /// <summary>The elements of an array (strings, nested arrays, or numbers) as values.</summary>
    public IEnumerable<GgufValue> Elements()
    {
        if (Type != GgufValueType.Array) throw new GgufFormatException($"expected an array, found {Type}", _offset);
        int pos = _offset;
        for (long i = 0; i < Count; i++)
        {
            var v = ElementAt(pos, out int next);
            pos = next;
            yield return v;
        }
    }

    /// <summary>Strings of a string array, decoded.</summary>
    public string[] AsStringArray()
    {
        if (Type != GgufValueType.Array || ElementType != GgufValueType.String)
            throw new GgufFormatException($"expected an array of strings, found {Describe()}", _offset);
        var result = new string[Count];
        int pos = _offset;
        for (long i = 0; i < Count; i++) { result[i] = ReadStringAt(pos, out int next); pos = next; }
        return result;
    }

    private GgufValue ElementAt(int pos, out int next)
    {
        var span = _buffer.Span;
        switch (ElementType)
        {
            case GgufValueType.String:
                int len = StringLength(pos, out int header);
                next = pos + header + len;
                return new GgufValue(_buffer, _version, GgufValueType.String, pos);
            case GgufValueType.Array:
                var inner = (GgufValueType)BinaryPrimitives.ReadUInt32LittleEndian(span[pos..]);
                long count = _version == 1 ? BinaryPrimitives.ReadUInt32LittleEndian(span[(pos + 4)..])
                                           : (long)BinaryPrimitives.ReadUInt64LittleEndian(span[(pos + 4)..]);
                int start = pos + 4 + (_version == 1 ? 4 : 8);
                var nested = new GgufValue(_buffer, _version, GgufValueType.Array, start, inner, count);
                next = start + nested.PayloadLength();
                return nested;
            default:
                next = pos + GgufValueTypes.FixedSize(ElementType);
                return new GgufValue(_buffer, _version, ElementType, pos);
        }
    }

    /// <summary>Bytes of this array's payload (already validated by the parser).</summary>
    internal int PayloadLength()
    {
        int size = GgufValueTypes.FixedSize(ElementType);
        if (size != 0) return checked((int)Count * size);
        int pos = _offset;
        for (long i = 0; i < Count; i++) ElementAt(pos, out pos);
        return pos - _offset;
    }

    private int StringLength(int pos, out int header)
    {
        var span = _buffer.Span;
        header = _version == 1 ? 4 : 8;
        return _version == 1 ? (int)BinaryPrimitives.ReadUInt32LittleEndian(span[pos..])
                             : (int)BinaryPrimitives.ReadUInt64LittleEndian(span[pos..]);
    }

    private string ReadStringAt(int pos, out int next)
    {
        int len = StringLength(pos, out int header);
        next = pos + header + len;
        return Encoding.UTF8.GetString(_buffer.Span.Slice(pos + header, len));
    }

    /// <summary>The value as plain .NET data (see <see cref="GgufArray"/>), e.g. for round-trip tests.</summary>
    public object ToObject()
    {
        var b = Bytes;
        switch (Type)
        {
            case GgufValueType.UInt8: return b[0];
            case GgufValueType.Int8: return (sbyte)b[0];
            case GgufValueType.UInt16: return BinaryPrimitives.ReadUInt16LittleEndian(b);
            case GgufValueType.Int16: return BinaryPrimitives.ReadInt16LittleEndian(b);
            case GgufValueType.UInt32: return BinaryPrimitives.ReadUInt32LittleEndian(b);
            case GgufValueType.Int32: return BinaryPrimitives.ReadInt32LittleEndian(b);
            case GgufValueType.Float32: return BinaryPrimitives.ReadSingleLittleEndian(b);
            case GgufValueType.Bool: return b[0] != 0;
            case GgufValueType.String: return AsString();
            case GgufValueType.UInt64: return BinaryPrimitives.ReadUInt64LittleEndian(b);
            case GgufValueType.Int64: return BinaryPrimitives.ReadInt64LittleEndian(b);
            case GgufValueType.Float64: return BinaryPrimitives.ReadDoubleLittleEndian(b);
        }
        Array items = ElementType switch
        {
            GgufValueType.UInt8 => AsSpan<byte>().ToArray(),
            GgufValueType.Int8 => AsSpan<sbyte>().ToArray(),
            GgufValueType.UInt16 => AsSpan<ushort>().ToArray(),
            GgufValueType.Int16 => AsSpan<short>().ToArray(),
            GgufValueType.UInt32 => AsSpan<uint>().ToArray(),
            GgufValueType.Int32 => AsSpan<int>().ToArray(),
            GgufValueType.Float32 => AsSpan<float>().ToArray(),
            GgufValueType.Bool => AsSpan<byte>().ToArray().Select(x => x != 0).ToArray(),
            GgufValueType.UInt64 => AsSpan<ulong>().ToArray(),
            GgufValueType.Int64 => AsSpan<long>().ToArray(),
            GgufValueType.Float64 => AsSpan<double>().ToArray(),
            GgufValueType.String => AsStringArray(),
            _ => Elements().Select(e => (GgufArray)e.ToObject()).ToArray(),
        };
        return new GgufArray(ElementType, items);
    }

    public string Describe() => Type == GgufValueType.Array ? $"{ElementType}[{Count}]" : Type.ToString();

    /// <summary>Human-readable text; arrays abbreviated to their first <paramref name="maxItems"/> items.</summary>
    public string ToDisplayString(int maxItems = 8)
    {
        switch (Type)
        {
            case GgufValueType.String: return Quote(AsString());
            case GgufValueType.Bool: return AsBool() ? "true" : "false";
            case GgufValueType.Float32: return AsSingle().ToString("R", System.Globalization.CultureInfo.InvariantCulture);
            case GgufValueType.Float64: return AsDouble().ToString("R", System.Globalization.CultureInfo.InvariantCulture);
            case GgufValueType.UInt64: return BinaryPrimitives.ReadUInt64LittleEndian(Bytes).ToString(System.Globalization.CultureInfo.InvariantCulture);
            case GgufValueType.Array:
                var shown = Elements().Take(maxItems).Select(e => e.ToDisplayString(maxItems));
                string more = Count > maxItems ? $", ... ({Count} items)" : "";
                return "[" + string.Join(", ", shown) + more + "]";
            default: return AsInt64().ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    /// <summary>Characters a terminal acts on instead of showing: C0 and C1 controls (ESC, CSI, DEL, …), line
    /// and paragraph separators, and the bidirectional overrides that reorder what is shown.</summary>
    public static bool IsUnsafeForTerminal(char c) =>
        char.IsControl(c) || c is '\u2028' or '\u2029' or (>= '\u202a' and <= '\u202e') or (>= '\u2066' and <= '\u2069');

    /// <summary>A string as a JSON/C-style quoted literal (control characters escaped).</summary>
    public static string Quote(string s) => Quote(s, IsUnsafeForTerminal, namedBackspaceAndFormFeed: false);

    /// <summary><paramref name="s"/> double-quoted with JSON's escapes: " \ \n \r \t by name (\b \f too when
    /// <paramref name="namedBackspaceAndFormFeed"/>), any other character <paramref name="asCode"/> selects as \uXXXX.</summary>
    internal static string Quote(string s, Func<char, bool> asCode, bool namedBackspaceAndFormFeed)
    {
        var sb = new StringBuilder(s.Length + 2).Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b' when namedBackspaceAndFormFeed: sb.Append("\\b"); break;
                case '\f' when namedBackspaceAndFormFeed: sb.Append("\\f"); break;
                default:
                    if (asCode(c)) sb.Append($"\\u{(int)c:x4}"); else sb.Append(c);
                    break;
            }
        }
        return sb.Append('"').ToString();
    }
}
