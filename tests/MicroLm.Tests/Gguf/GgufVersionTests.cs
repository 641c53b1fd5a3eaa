using MicroLm.Gguf;
using MicroLm.Tensors;

namespace MicroLm.Tests.Gguf;

/// <summary>GGUF v1 (u32 counts, string lengths and dims) and v2 (u64, like v3), built by hand.</summary>
public class GgufVersionTests
{
    internal static byte[] Build(int version, int alignment = 32)
    {
        var r = new RawGguf(version).Header(tensors: 2, kvs: 5);
        r.KvStr("general.architecture", "llama");
        r.KvU32("llama.context_length", 128);
        r.Str("general.alignment").U32((uint)GgufValueType.UInt32).U32((uint)alignment);
        // tokens: array of strings
        r.Str("tokenizer.ggml.tokens").U32((uint)GgufValueType.Array).U32((uint)GgufValueType.String).Count(3)
            .Str("<unk>").Str("").Str("▁héllo");
        // nested: array of arrays of f32
        r.Str("nested").U32((uint)GgufValueType.Array).U32((uint)GgufValueType.Array).Count(2)
            .U32((uint)GgufValueType.Float32).Count(2).U32(BitConverter.SingleToUInt32Bits(1.5f)).U32(BitConverter.SingleToUInt32Bits(-2f))
            .U32((uint)GgufValueType.Float32).Count(0);
        r.Tensor("a", (uint)GgmlType.F32, 0, 4, 2);           // 32 bytes
        ulong bOffset = (ulong)(BOffset(alignment));
        r.Tensor("b", (uint)GgmlType.Q8_0, bOffset, 32);      // 34 bytes, after a gap
        r.Align(alignment);
        for (int i = 0; i < 32; i++) r.U8((byte)i);
        r.Align(alignment).Zeros(alignment);
        for (int i = 0; i < 34; i++) r.U8((byte)(100 + i));
        return r.ToArray();
    }

    /// <summary>b follows a (32 bytes) after one extra alignment unit of gap.</summary>
    private static long BOffset(int alignment) => (32 + alignment - 1) / alignment * alignment + alignment;

    [Theory]
    [InlineData(1, 32)]
    [InlineData(2, 32)]
    [InlineData(3, 32)]
    [InlineData(1, 64)]
    [InlineData(2, 16)]
    public void OldVersionsParse(int version, int alignment)
    {
        var bytes = Build(version, alignment);
        using var f = GgufFile.FromMemory(bytes);
        Assert.Equal(version, f.Version);
        Assert.Equal(alignment, f.Alignment);
        Assert.Equal(5, f.MetadataCount);
        Assert.Equal("llama", f.Architecture);
        Assert.Equal(128, f.GetInt("llama.context_length"));
        Assert.Equal(["<unk>", "", "▁héllo"], f.Get("tokenizer.ggml.tokens").AsStringArray());
        var nested = (GgufArray)f.Get("nested").ToObject();
        Assert.Equal(2, nested.Items.Length);
        Assert.Equal(new float[] { 1.5f, -2f }, ((GgufArray)nested.Items.GetValue(0)!).Items);
        Assert.Empty(((GgufArray)nested.Items.GetValue(1)!).Items);
        Assert.Equal("[[1.5, -2], []]", f.Get("nested").ToDisplayString());
        Assert.Equal(2, f.Tensors.Count);
        var a = f.FindTensor("a")!;
        var b = f.FindTensor("b")!;
        Assert.Equal([4L, 2], a.Shape);
        Assert.Equal((GgmlType.F32, 32L, 0L), (a.Type.Type, a.ByteSize, a.Offset));
        Assert.Equal((GgmlType.Q8_0, 34L, BOffset(alignment)), (b.Type.Type, b.ByteSize, b.Offset));
        Assert.Equal(Enumerable.Range(0, 32).Select(i => (byte)i), f.GetTensorData(a).ToArray());
        Assert.Equal(Enumerable.Range(100, 34).Select(i => (byte)i), f.GetTensorData(b).ToArray());
        Assert.Equal(0, f.DataOffset % alignment);
    }

    [Fact]
    public void V2AndV3HaveTheSameLayout()
    {
        // Sanity check of the builder: v2 differs from v3 only in the version field, v1 is narrower.
        Assert.True(Build(1).Length < Build(3).Length);
        Assert.Equal(Build(2), Build(3)[..4].Concat(new byte[] { 2, 0, 0, 0 }).Concat(Build(3)[8..]));
    }

    [Theory]
    [InlineData(new byte[] { 0, 0, 0, 3 }, "big-endian")]
    [InlineData(new byte[] { 0, 0, 0, 2 }, "big-endian")]
    [InlineData(new byte[] { 0, 0, 0, 1 }, "big-endian")]
    [InlineData(new byte[] { 0, 0, 0, 0 }, "version 0")]
    [InlineData(new byte[] { 4, 0, 0, 0 }, "version 4")]
    [InlineData(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF }, "version 4294967295")]
    public void UnsupportedVersions(byte[] versionBytes, string expected)
    {
        var bytes = Build(3);
        versionBytes.CopyTo(bytes, 4);
        var e = Assert.Throws<GgufFormatException>(() => GgufFile.FromMemory(bytes));
        Assert.Contains(expected, e.Message);
        Assert.Equal(4, e.Offset);
    }

    [Fact]
    public void BigEndianFileIsNamedAsSuch()
    {
        // A whole big-endian file, as llama.cpp's gguf-py writes with --bigendian: magic bytes unchanged,
        // every number byte-swapped.
        var r = new RawGguf(3).Bytes("GGUF"u8.ToArray()).Bytes(0, 0, 0, 3).Bytes(0, 0, 0, 0, 0, 0, 0, 0).Bytes(0, 0, 0, 0, 0, 0, 0, 1)
            .Bytes(0, 0, 0, 0, 0, 0, 0, 1).Bytes("k"u8.ToArray()).Bytes(0, 0, 0, 4).Bytes(0, 0, 0, 7);
        var e = Assert.Throws<GgufFormatException>(() => r.Parse());
        Assert.Contains("big-endian", e.Message);
        Assert.Equal(4, e.Offset);
    }
}
