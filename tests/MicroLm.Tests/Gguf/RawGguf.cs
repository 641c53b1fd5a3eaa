using System.Buffers.Binary;
using System.Text;
using MicroLm.Gguf;

namespace MicroLm.Tests.Gguf;

/// <summary>Hand-built GGUF bytes for any version (v1: u32 counts, string lengths and dims; v2/v3: u64),
/// so tests can write what <see cref="GgufWriter"/> refuses to: duplicates, bad types, bad offsets.</summary>
internal sealed class RawGguf(int version = 3)
{
    private readonly List<byte> _b = [];
    public int Version { get; } = version;
    public int Position => _b.Count;

    public RawGguf Bytes(params byte[] bytes) { _b.AddRange(bytes); return this; }
    public RawGguf U8(byte v) => Bytes(v);
    public RawGguf U32(uint v) { Span<byte> s = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(s, v); return Bytes(s.ToArray()); }
    public RawGguf U64(ulong v) { Span<byte> s = stackalloc byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(s, v); return Bytes(s.ToArray()); }
    public RawGguf I64(long v) => U64(unchecked((ulong)v));
    /// <summary>A count or length: u32 in v1, u64 later.</summary>
    public RawGguf Count(ulong n) => Version == 1 ? U32(checked((uint)n)) : U64(n);
    public RawGguf Str(string s) { var b = Encoding.UTF8.GetBytes(s); Count((ulong)b.Length); return Bytes(b); }

    public RawGguf Header(ulong tensors, ulong kvs) => U32(GgufFile.Magic).U32((uint)Version).Count(tensors).Count(kvs);

    public RawGguf KvU32(string key, uint v) => Str(key).U32((uint)GgufValueType.UInt32).U32(v);
    public RawGguf KvStr(string key, string v) => Str(key).U32((uint)GgufValueType.String).Str(v);

    /// <summary>A tensor info entry; dims are u32 in v1 and i64 later.</summary>
    public RawGguf Tensor(string name, uint type, ulong offset, params long[] dims)
    {
        Str(name).U32((uint)dims.Length);
        foreach (var d in dims) { if (Version == 1) U32(checked((uint)d)); else I64(d); }
        return U32(type).U64(offset);
    }

    /// <summary>Zero padding up to the next multiple of <paramref name="alignment"/>.</summary>
    public RawGguf Align(int alignment = 32) { while (_b.Count % alignment != 0) _b.Add(0); return this; }
    public RawGguf Zeros(int n) { for (int i = 0; i < n; i++) _b.Add(0); return this; }

    public byte[] ToArray() => [.. _b];
    public GgufFile Parse() => GgufFile.FromMemory(ToArray());
}
