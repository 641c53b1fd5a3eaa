using System.Buffers.Binary;
using System.Text;
using MicroLm.Tensors;

namespace MicroLm.Gguf;

/// <summary>Writes GGUF version 3 files, byte for byte deterministic: metadata in the order added,
/// tensors in the order added, each aligned, padding zero-filled. Tests and benchmarks use it to
/// build synthetic models of any shape.</summary>
internal sealed class GgufWriter
{
    private readonly List<(string Key, GgufValueType Type, object Value)> _metadata = [];
    private readonly List<(string Name, GgmlType Type, long[] Shape, byte[] Data)> _tensors = [];
    private readonly HashSet<string> _keys = new(StringComparer.Ordinal);
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    public int Alignment { get; private set; } = GgufFile.DefaultAlignment;

    /// <summary>Bytes of tensor data added so far (without alignment padding).</summary>
    public long TensorBytes => _tensors.Sum(t => t.Data.LongLength);

    /// <summary>Adds a metadata value. <paramref name="value"/> is the .NET value of the type
    /// (byte, sbyte, ushort, short, uint, int, float, bool, string, ulong, long, double, or <see cref="GgufArray"/>).</summary>
    public GgufWriter Add(string key, GgufValueType type, object value)
    {
        if (!_keys.Add(key)) throw new ArgumentException($"duplicate metadata key '{key}'");
        Check(type, value);
        _metadata.Add((key, type, value));
        if (key == "general.alignment") Alignment = checked((int)Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture));
        return this;
    }

    public GgufWriter Add(string key, string value) => Add(key, GgufValueType.String, value);
    public GgufWriter Add(string key, uint value) => Add(key, GgufValueType.UInt32, value);
    public GgufWriter Add(string key, int value) => Add(key, GgufValueType.Int32, value);
    public GgufWriter Add(string key, float value) => Add(key, GgufValueType.Float32, value);
    public GgufWriter Add(string key, bool value) => Add(key, GgufValueType.Bool, value);
    public GgufWriter Add(string key, string[] values) => Add(key, GgufValueType.Array, new GgufArray(GgufValueType.String, values));
    public GgufWriter Add(string key, float[] values) => Add(key, GgufValueType.Array, new GgufArray(GgufValueType.Float32, values));
    public GgufWriter Add(string key, int[] values) => Add(key, GgufValueType.Array, new GgufArray(GgufValueType.Int32, values));

    /// <summary>Adds a tensor whose bytes are already encoded in <paramref name="type"/>.</summary>
    public GgufWriter AddTensor(string name, GgmlType type, long[] shape, byte[] data)
    {
        if (!_names.Add(name)) throw new ArgumentException($"duplicate tensor name '{name}'");
        var info = TensorTypes.Get(type);
        if (shape.Length > 4) throw new ArgumentException($"tensor '{name}': at most 4 dimensions");
        long elements = 1;
        foreach (var d in shape) elements *= d;
        long ne0 = shape.Length > 0 ? shape[0] : 1;
        if (ne0 % info.BlockSize != 0) throw new ArgumentException($"tensor '{name}': row length {ne0} is not a multiple of {info.BlockSize}");
        long expected = ne0 == 0 ? 0 : info.RowBytes(ne0) * (elements / ne0);
        if (data.Length != expected) throw new ArgumentException($"tensor '{name}': {data.Length} bytes given, {expected} expected for {info.Name} {GgufFile.FormatShape(shape)}");
        _tensors.Add((name, type, (long[])shape.Clone(), data));
        return this;
    }

    public byte[] ToArray()
    {
        using var ms = new MemoryStream();
        WriteTo(ms);
        return ms.ToArray();
    }

    /// <summary>Writes the file safely: to a temporary name beside it, flushed, then renamed (see <see cref="IO.SafeFile"/>).</summary>
    public void WriteTo(string path)
    {
        using var f = IO.SafeFile.Create(path);
        WriteTo(f.Stream);
        f.Commit();
    }

    public void WriteTo(Stream stream)
    {
        var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        w.Write(GgufFile.Magic);
        w.Write(3u);
        w.Write((ulong)_tensors.Count);
        w.Write((ulong)_metadata.Count);
        foreach (var (key, type, value) in _metadata)
        {
            WriteString(w, key);
            w.Write((uint)type);
            WriteValue(w, type, value);
        }
        long offset = 0;
        var offsets = new long[_tensors.Count];
        for (int i = 0; i < _tensors.Count; i++)
        {
            var (name, type, shape, data) = _tensors[i];
            WriteString(w, name);
            w.Write((uint)shape.Length);
            foreach (var d in shape) w.Write((ulong)d);
            w.Write((uint)type);
            w.Write((ulong)offset);
            offsets[i] = offset;
            offset = Align(offset + data.Length);
        }
        w.Flush();
        long start = stream.Position;
        if (_tensors.Count > 0) Pad(w, Align(start) - start);
        long pos = 0;
        for (int i = 0; i < _tensors.Count; i++)
        {
            Pad(w, offsets[i] - pos);
            w.Write(_tensors[i].Data);
            pos = offsets[i] + _tensors[i].Data.Length;
        }
        if (_tensors.Count > 0) Pad(w, Align(pos) - pos);
        w.Flush();
    }

    private long Align(long x) => (x + Alignment - 1) / Alignment * Alignment;

    private static void Pad(BinaryWriter w, long n)
    {
        for (long i = 0; i < n; i++) w.Write((byte)0);
    }

    private static void WriteString(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static void WriteValue(BinaryWriter w, GgufValueType type, object value)
    {
        switch (type)
        {
            case GgufValueType.UInt8: w.Write((byte)value); break;
            case GgufValueType.Int8: w.Write((sbyte)value); break;
            case GgufValueType.UInt16: w.Write((ushort)value); break;
            case GgufValueType.Int16: w.Write((short)value); break;
            case GgufValueType.UInt32: w.Write((uint)value); break;
            case GgufValueType.Int32: w.Write((int)value); break;
            case GgufValueType.Float32: w.Write((float)value); break;
            case GgufValueType.Bool: w.Write((bool)value ? (byte)1 : (byte)0); break;
            case GgufValueType.String: WriteString(w, (string)value); break;
            case GgufValueType.UInt64: w.Write((ulong)value); break;
            case GgufValueType.Int64: w.Write((long)value); break;
            case GgufValueType.Float64: w.Write((double)value); break;
            case GgufValueType.Array:
                var array = (GgufArray)value;
                w.Write((uint)array.ElementType);
                w.Write((ulong)array.Items.Length);
                // A nested array element is written as (element type, count, items), without a tag of its own.
                foreach (var item in array.Items) WriteValue(w, array.ElementType, item!);
                break;
            default: throw new ArgumentException($"unknown value type {type}");
        }
    }

    private static void Check(GgufValueType type, object value)
    {
        bool ok = type switch
        {
            GgufValueType.UInt8 => value is byte, GgufValueType.Int8 => value is sbyte,
            GgufValueType.UInt16 => value is ushort, GgufValueType.Int16 => value is short,
            GgufValueType.UInt32 => value is uint, GgufValueType.Int32 => value is int,
            GgufValueType.Float32 => value is float, GgufValueType.Bool => value is bool,
            GgufValueType.String => value is string, GgufValueType.UInt64 => value is ulong,
            GgufValueType.Int64 => value is long, GgufValueType.Float64 => value is double,
            GgufValueType.Array => value is GgufArray a && a.Items.Cast<object>().All(i => Ok(a.ElementType, i)),
            _ => false,
        };
        if (!ok) throw new ArgumentException($"value {value} is not a {type}");

        static bool Ok(GgufValueType t, object i) { try { Check(t, i); return true; } catch (ArgumentException) { return false; } }
    }
}
