using MicroLm.Gguf;
using MicroLm.Tensors;

namespace MicroLm.Tests.Gguf;

/// <summary>Each malformed header fails with <see cref="GgufFormatException"/> that says what is wrong
/// and points at the offending byte.</summary>
public class GgufValidationTests
{
    private const int FirstKv = 24;   // v3: magic, version, u64 tensor count, u64 kv count

    private static GgufFormatException Fails(byte[] bytes, string messagePart, long offset)
    {
        var e = Assert.Throws<GgufFormatException>(() => GgufFile.FromMemory(bytes));
        Assert.Contains(messagePart, e.Message);
        Assert.Equal(offset, e.Offset);
        Assert.EndsWith($"(at byte {offset})", e.Message);
        return e;
    }

    private static GgufFormatException Fails(RawGguf r, string messagePart, long offset) => Fails(r.ToArray(), messagePart, offset);

    [Fact]
    public void BadMagic()
    {
        Fails("GGML\u0003\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"u8.ToArray(), "not a GGUF file (magic bytes 47474D4C", 0);
        Fails(new byte[100], "not a GGUF file", 0);
        Fails("PK\u0003\u0004 a zip, not a gguf"u8.ToArray(), "not a GGUF file", 0);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    [InlineData(7)]
    public void TooShortForAHeader(int length)
    {
        var bytes = new RawGguf().Header(0, 0).ToArray()[..length];
        Fails(bytes, length == 0 ? "0 bytes" : "too short", 0);
    }

    [Fact]
    public void EmptyHeaderParses()
    {
        using var f = new RawGguf().Header(0, 0).Parse();
        Assert.Empty(f.Tensors);
        Assert.Equal(0, f.MetadataCount);
        Assert.Equal(32, f.DataOffset);
    }

    [Fact]
    public void TruncatedAnywhere()
    {
        // A file with every kind of entry; every strict prefix that cuts into the header or the tensor data fails,
        // at an offset no later than where the bytes ran out (or at the data section for tensor data).
        var w = new GgufWriter();
        foreach (var (k, t, v) in GgufWriterRoundTripTests.Values()) w.Add(k, t, v);
        w.AddTensor("q", GgmlType.Q8_0, [64, 2], new byte[136]).AddTensor("f", GgmlType.F32, [3], new byte[12]);
        var bytes = w.ToArray();
        using var full = GgufFile.FromMemory(bytes);
        long dataEnd = full.DataOffset + full.Tensors.Max(t => t.Offset + t.ByteSize);
        int failures = 0;
        for (int n = 0; n < dataEnd; n++)
        {
            var e = Assert.Throws<GgufFormatException>(() => GgufFile.FromMemory(bytes.AsMemory(0, n)));
            if (n < full.DataOffset) Assert.InRange(e.Offset, 0, n);
            else Assert.InRange(e.Offset, full.DataOffset, dataEnd);
            failures++;
        }
        Assert.Equal(dataEnd, failures);
        // Only the zero padding after the last tensor may be cut.
        for (long n = dataEnd; n <= bytes.Length; n++)
            using (GgufFile.FromMemory(bytes.AsMemory(0, (int)n))) { }
    }

    [Fact]
    public void KeyLengthPastEnd()
    {
        var e = Fails(new RawGguf().Header(0, 1).U64(1000).Zeros(20), "metadata key length 1000 exceeds the 20 bytes that remain", FirstKv);
        Fails(new RawGguf().Header(0, 1).U64(ulong.MaxValue).Zeros(20), "exceeds", FirstKv);
        Fails(new RawGguf(1).Header(0, 1).U32(uint.MaxValue).Zeros(20), "exceeds", 16);
    }

    [Fact]
    public void StringValueLengthPastEnd()
    {
        var r = new RawGguf().Header(0, 1).Str("k").U32((uint)GgufValueType.String);
        int at = r.Position;
        Fails(r.U64(1L << 40).Bytes("xyz"u8.ToArray()), "metadata 'k': string length 1099511627776 exceeds the 3 bytes", at);
    }

    [Fact]
    public void StringInArrayPastEnd()
    {
        var r = new RawGguf().Header(0, 1).Str("toks").U32((uint)GgufValueType.Array).U32((uint)GgufValueType.String).U64(2).Str("ok");
        int at = r.Position;
        Fails(r.U64(50).Bytes("short"u8.ToArray()), "string length 50", at);
    }

    [Theory]
    [InlineData((uint)GgufValueType.UInt8, 1UL << 62)]
    [InlineData((uint)GgufValueType.Float64, (1UL << 61) + 1)]
    [InlineData((uint)GgufValueType.String, 100)]
    [InlineData((uint)GgufValueType.Array, 10)]
    [InlineData((uint)GgufValueType.Int32, ulong.MaxValue)]
    public void ArrayCountHuge(uint elementType, ulong count) // the enum is internal; test methods are public
    {
        var r = new RawGguf().Header(0, 1).Str("arr").U32((uint)GgufValueType.Array).U32(elementType);
        int at = r.Position;
        Fails(r.U64(count).Zeros(64), "cannot fit", at);
    }

    [Fact]
    public void HeaderCountsHuge()
    {
        Fails(new RawGguf().Header(0, 1UL << 40).Zeros(100), "metadata count 1099511627776 is impossibly large", 16);
        Fails(new RawGguf().Header(ulong.MaxValue, 0).Zeros(100), "tensor count", 8);
        Fails(new RawGguf().Header(0, 1000).Zeros(100), "metadata count 1000 cannot fit", 16);
        Fails(new RawGguf().Header(1000, 0).Zeros(100), "tensor count 1000 cannot fit", 8);
        // v1 counts are u32 and sit at 8 and 12.
        Fails(new RawGguf(1).Header(0, 1000).Zeros(100), "metadata count 1000 cannot fit", 12);
        Fails(new RawGguf(1).Header(1000, 0).Zeros(100), "tensor count 1000 cannot fit", 8);
    }

    [Theory]
    [InlineData(13u)]
    [InlineData(0xFFFFFFFFu)]
    public void UnknownValueType(uint type)
    {
        var r = new RawGguf().Header(0, 1).Str("key");
        int at = r.Position;
        Fails(r.U32(type).Zeros(16), $"metadata 'key' has unknown value type {type}", at);
        var a = new RawGguf().Header(0, 1).Str("key").U32((uint)GgufValueType.Array);
        at = a.Position;
        Fails(a.U32(type).U64(0), $"array of unknown value type {type}", at);
    }

    [Theory]
    [InlineData(4u)]   // Q4_2, removed from ggml
    [InlineData(5u)]   // Q4_3, removed
    [InlineData(31u)]
    [InlineData(40u)]
    [InlineData(64u)]
    [InlineData(0xFFFFFFFFu)]
    public void UnknownTensorType(uint type)
    {
        var r = new RawGguf().Header(1, 0).Str("blk.0.weird").U32(1).I64(32);
        int at = r.Position;
        Fails(r.U32(type).U64(0).Align().Zeros(256), $"tensor 'blk.0.weird' has unknown tensor type id {type}", at);
    }

    [Fact]
    public void FiveDimensions()
    {
        var r = new RawGguf().Header(1, 0).Str("t");
        int at = r.Position;
        Fails(r.U32(5).I64(1).I64(1).I64(1).I64(1).I64(1).U32(0).U64(0).Align().Zeros(32), "tensor 't' has 5 dimensions; at most 4", at);
    }

    [Fact]
    public void NegativeDimension()
    {
        var r = new RawGguf().Header(1, 0).Str("t").U32(2).I64(4);
        int at = r.Position;
        Fails(r.I64(-1).U32(0).U64(0).Align().Zeros(32), "negative dimension -1", at);
    }

    [Theory]
    [InlineData(GgmlType.Q8_0, 33)]
    [InlineData(GgmlType.Q4_0, 16)]
    [InlineData(GgmlType.Q4_K, 128)]
    [InlineData(GgmlType.Q6_K, 172)]
    public void RowLengthNotAMultipleOfTheBlockSize(GgmlType type, long ne0)
    {
        var r = new RawGguf().Header(1, 0).Str("t");
        int at = r.Position;
        Fails(r.Tensor2(type, ne0).Align().Zeros(4096), $"row length {ne0} is not a multiple of {type}'s block size", at);
    }

    [Fact]
    public void ElementCountOverflow()
    {
        var r = new RawGguf().Header(1, 0).Str("t").U32(3).I64(1L << 40).I64(1L << 20);
        int at = r.Position;
        Fails(r.I64(1L << 10).U32(0).U64(0).Align().Zeros(32), "element count overflows", at);
    }

    [Theory]
    [InlineData(GgmlType.F32, 1L << 62)]       // 2^64 bytes: wraps to 0 in 64-bit arithmetic
    [InlineData(GgmlType.F64, 1L << 61)]       // likewise
    [InlineData(GgmlType.F32, (1L << 62) + 1)] // wraps to 4
    [InlineData(GgmlType.Q8_K, 1L << 62)]      // 292/256 bytes per value
    [InlineData(GgmlType.F32, 1L << 30)]
    public void TensorBiggerThanTheFile(GgmlType type, long ne0)
    {
        var r = new RawGguf().Header(1, 0).Str("big");
        int at = r.Position;
        Fails(r.Tensor2(type, ne0).Align().Zeros(64), "needs more bytes than the file holds", at);
    }

    [Fact]
    public void TensorBiggerThanTheFileInAnyDimension()
    {
        var r = new RawGguf().Header(1, 0).Str("big");
        int at = r.Position;
        Fails(r.U32(2).I64(4).I64(1L << 60).U32((uint)GgmlType.F32).U64(0).Align().Zeros(64), "needs more bytes than the file holds", at);
    }

    [Theory]
    [InlineData(4UL)]
    [InlineData(16UL)]
    [InlineData(33UL)]
    public void MisalignedOffset(ulong offset)
    {
        var r = new RawGguf().Header(1, 0).Str("t").U32(1).I64(8).U32(0);
        int at = r.Position;
        Fails(r.U64(offset).Align().Zeros(128), $"data offset {offset} is not a multiple of the alignment 32", at);
    }

    [Fact]
    public void MisalignedForCustomAlignment()
    {
        var r = new RawGguf().Header(1, 1).KvU32("general.alignment", 64).Str("t").U32(1).I64(8).U32(0);
        int at = r.Position;
        Fails(r.U64(32).Align(64).Zeros(128), "not a multiple of the alignment 64", at);
    }

    [Fact]
    public void OffsetPastTheEndOfTheFile()
    {
        var r = new RawGguf().Header(1, 0).Str("t").U32(1).I64(8).U32(0);
        int at = r.Position;
        Fails(r.U64(1UL << 63).Align().Zeros(64), "past the end of the file", at);
    }

    [Fact]
    public void TensorRunsPastTheEnd()
    {
        var r = new RawGguf().Header(2, 0).Tensor("a", 0, 0, 8).Tensor("b", 0, 32, 16).Align();
        int data = r.Position;
        Fails(r.Zeros(32 + 63), "tensor 'b' (F32 [16], 64 bytes at data offset 32) runs past the end of the file", data + 32);
        using (new RawGguf().Header(2, 0).Tensor("a", 0, 0, 8).Tensor("b", 0, 32, 16).Align().Zeros(96).Parse()) { }
    }

    [Fact]
    public void DataSectionMissing()
    {
        var r = new RawGguf().Header(1, 0).Tensor("a", 0, 0, 1).Zeros(3);
        var bytes = r.ToArray();
        Fails(bytes, "file ends before the tensor data section", bytes.Length);
    }

    [Theory]
    [InlineData(0UL, 0UL)]
    [InlineData(0UL, 32UL)]     // a: 64 bytes at 0, b starts inside it
    [InlineData(64UL, 32UL)]    // listed in the other order
    public void OverlappingTensors(ulong offsetA, ulong offsetB)
    {
        var r = new RawGguf().Header(2, 0).Tensor("a", 0, offsetA, 16).Tensor("b", 0, offsetB, 16).Align();
        int data = r.Position;
        var e = Assert.Throws<GgufFormatException>(() => r.Zeros(256).Parse());
        Assert.Contains("overlaps", e.Message);
        Assert.Equal(data + (long)System.Math.Max(offsetA, offsetB), e.Offset);
    }

    [Fact]
    public void EmptyTensorsMayShareOffsets()
    {
        using var f = new RawGguf().Header(3, 0).Tensor("a", 0, 0, 0).Tensor("b", 0, 0, 8).Tensor("c", 0, 0, 0, 5).Align().Zeros(32).Parse();
        Assert.Equal([0L, 32, 0], f.Tensors.Select(t => t.ByteSize));
    }

    [Fact]
    public void DuplicateKey()
    {
        var r = new RawGguf().Header(0, 3).KvU32("a", 1).KvU32("b", 2);
        int at = r.Position;
        Fails(r.KvStr("a", "again"), "duplicate metadata key 'a'", at);
    }

    [Fact]
    public void DuplicateTensorName()
    {
        var r = new RawGguf().Header(2, 0).Tensor("w", 0, 0, 8);
        int at = r.Position;
        Fails(r.Tensor("w", 0, 32, 8).Align().Zeros(64), "duplicate tensor name 'w'", at);
    }

    [Fact]
    public void NamesInMessagesAreEscapedAndShortened()
    {
        // A hostile name must not turn a one-line error into several lines or a 64 KB one.
        var e = Assert.Throws<GgufFormatException>(() => new RawGguf().Header(0, 2).KvU32("a\nb\u001b[31m", 1).KvU32("a\nb\u001b[31m", 2).Parse());
        Assert.DoesNotContain('\n', e.Message);
        Assert.DoesNotContain('\u001b', e.Message);
        Assert.Contains("a\\nb", e.Message);
        string longName = new('x', 60_000);
        e = Assert.Throws<GgufFormatException>(() => new RawGguf().Header(0, 2).KvU32(longName, 1).KvU32(longName, 2).Parse());
        Assert.InRange(e.Message.Length, 20, 400);
    }

    [Fact]
    public void KeysAndNamesMustBeValidUtf8()
    {
        var r = new RawGguf().Header(0, 1);
        int at = r.Position;
        Fails(r.U64(3).Bytes(0x61, 0xC3, 0x28).U32((uint)GgufValueType.UInt8).U8(1), "metadata key is not valid UTF-8", at);
        r = new RawGguf().Header(1, 0);
        at = r.Position;
        Fails(r.U64(2).Bytes(0xFF, 0xFE).U32(1).I64(1).U32(0).U64(0).Align().Zeros(32), "tensor name is not valid UTF-8", at);
    }

    [Fact]
    public void KeyAndNameLengthLimits()
    {
        using (var ok = new RawGguf().Header(1, 1).KvU32(new string('k', 65535), 1).Tensor(new string('t', 64), 0, 0, 1).Align().Zeros(32).Parse())
            Assert.Equal(64, ok.Tensors[0].Name.Length);
        var r = new RawGguf().Header(0, 1);
        int at = r.Position;
        Fails(r.KvU32(new string('k', 65536), 1), "metadata key length 65536 exceeds the GGUF limit of 65535 bytes", at);
        r = new RawGguf().Header(1, 0);
        at = r.Position;
        Fails(r.Tensor(new string('t', 65), 0, 0, 1).Align().Zeros(32), "tensor name length 65 exceeds the GGUF limit of 64 bytes", at);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ClaimedCountsDoNotDriveAllocation(bool tensors)
    {
        // 1 MB of zeros claiming as many entries as could fit: entries are read as (empty key, u8 0) or
        // (empty name, 0 dims, F32, offset 0), so the second one is a duplicate and the parse stops there.
        // The reader must not have allocated for the claimed ~80,000 entries first.
        const int size = 1 << 20;
        var r = new RawGguf();
        r.Header(tensors ? (size - 24) / 24 : 0UL, tensors ? 0UL : (size - 24) / 13);
        var bytes = r.Zeros(size - r.Position).ToArray();
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<GgufFormatException>(() => GgufFile.FromMemory(bytes));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Contains("duplicate", e.Message);
        Assert.True(allocated < 64 * 1024, $"allocated {allocated:N0} bytes");
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(3u)]
    [InlineData(48u)]
    [InlineData(0x8000_0000u)]
    public void BadAlignmentValue(uint alignment)
    {
        var r = new RawGguf().Header(0, 1).Str("general.alignment").U32((uint)GgufValueType.UInt32);
        int at = r.Position;
        Fails(r.U32(alignment), "general.alignment must be a positive power of two", at);
    }

    [Fact]
    public void BadAlignmentType()
    {
        var r = new RawGguf().Header(0, 1).Str("general.alignment").U32((uint)GgufValueType.String);
        int at = r.Position;
        Fails(r.Str("32"), "general.alignment must be a positive power of two, found \"32\"", at);
        r = new RawGguf().Header(0, 1).Str("general.alignment").U32((uint)GgufValueType.Float32);
        at = r.Position;
        Fails(r.U32(BitConverter.SingleToUInt32Bits(32f)), "general.alignment", at);
        r = new RawGguf().Header(0, 1).Str("general.alignment").U32((uint)GgufValueType.Int32);
        at = r.Position;
        Fails(r.U32(unchecked((uint)-32)), "found -32", at);
        r = new RawGguf().Header(0, 1).Str("general.alignment").U32((uint)GgufValueType.UInt64);
        at = r.Position;
        Fails(r.U64(ulong.MaxValue), "general.alignment", at);
    }

    [Fact]
    public void NestingTooDeep()
    {
        static RawGguf Nested(int levels, out int deepestAt)
        {
            var r = new RawGguf().Header(0, 1).Str("deep").U32((uint)GgufValueType.Array);
            deepestAt = 0;
            for (int i = 1; i < levels; i++) r.U32((uint)GgufValueType.Array).U64(1);
            deepestAt = r.Position;   // the innermost array's header
            return r.U32((uint)GgufValueType.UInt8).U64(1).U8(7);
        }
        using (var ok = Nested(8, out _).Parse()) Assert.Contains("7", ok.Get("deep").ToDisplayString());
        var r9 = Nested(9, out int at);
        Fails(r9, "nested deeper than 8", at);
    }

    [Fact]
    public void ReaderErrorsAreFormatErrorsNotOthers()
    {
        // A value type mismatch at the accessor is a format error too (the caller asked the file for the wrong thing).
        using var f = new RawGguf().Header(0, 2).KvStr("s", "text").KvU32("n", 3).Parse();
        Assert.Throws<GgufFormatException>(() => f.Get("s").AsInt64());
        Assert.Throws<GgufFormatException>(() => f.Get("n").AsString());
        Assert.Throws<GgufFormatException>(() => f.Get("n").AsSpan<int>());
        Assert.Throws<KeyNotFoundException>(() => f.Get("missing"));
        Assert.Null(f.GetInt("missing"));
    }
}

internal static class RawGgufTestExtensions
{
    /// <summary>The rest of a 1-d tensor entry after its name: dims, type, offset 0.</summary>
    public static RawGguf Tensor2(this RawGguf r, GgmlType type, long ne0) => r.U32(1).I64(ne0).U32((uint)type).U64(0);
}
