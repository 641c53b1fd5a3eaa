using MicroLm.Gguf;
using MicroLm.Tensors;

namespace MicroLm.Tests.Gguf;

public class GgufWriterRoundTripTests
{
    private static readonly float NaNPayload = BitConverter.UInt32BitsToSingle(0x7FA5_5A01);   // signalling, odd payload
    private static readonly float NegNaN = BitConverter.UInt32BitsToSingle(0xFFC0_0001);
    private static readonly double NaNPayload64 = BitConverter.UInt64BitsToDouble(0x7FF0_0000_DEAD_BEEF);

    /// <summary>One entry per value type (all 13) and more for the corner cases.</summary>
    internal static IEnumerable<(string Key, GgufValueType Type, object Value)> Values()
    {
        yield return ("u8.min", GgufValueType.UInt8, byte.MinValue);
        yield return ("u8.max", GgufValueType.UInt8, byte.MaxValue);
        yield return ("i8.min", GgufValueType.Int8, sbyte.MinValue);
        yield return ("i8.max", GgufValueType.Int8, sbyte.MaxValue);
        yield return ("u16.max", GgufValueType.UInt16, ushort.MaxValue);
        yield return ("i16.min", GgufValueType.Int16, short.MinValue);
        yield return ("u32.max", GgufValueType.UInt32, uint.MaxValue);
        yield return ("i32.min", GgufValueType.Int32, int.MinValue);
        yield return ("i32.max", GgufValueType.Int32, int.MaxValue);
        yield return ("f32.nan", GgufValueType.Float32, NaNPayload);
        yield return ("f32.negnan", GgufValueType.Float32, NegNaN);
        yield return ("f32.negzero", GgufValueType.Float32, -0.0f);
        yield return ("f32.inf", GgufValueType.Float32, float.NegativeInfinity);
        yield return ("f32.eps", GgufValueType.Float32, float.Epsilon);
        yield return ("f32.max", GgufValueType.Float32, float.MaxValue);
        yield return ("bool.true", GgufValueType.Bool, true);
        yield return ("bool.false", GgufValueType.Bool, false);
        yield return ("str.empty", GgufValueType.String, "");
        yield return ("str.unicode", GgufValueType.String, "▁héllo wörld 🦙 中文 \u0000 \n\t\"\\ \uFFFD");
        yield return ("", GgufValueType.String, "empty key");
        yield return ("键.ключ.🔑", GgufValueType.String, "unicode key");
        yield return ("u64.max", GgufValueType.UInt64, ulong.MaxValue);
        yield return ("i64.min", GgufValueType.Int64, long.MinValue);
        yield return ("i64.max", GgufValueType.Int64, long.MaxValue);
        yield return ("f64.nan", GgufValueType.Float64, NaNPayload64);
        yield return ("f64.min", GgufValueType.Float64, double.MinValue);
        yield return ("f64.denormal", GgufValueType.Float64, double.Epsilon);
        yield return ("f64.negzero", GgufValueType.Float64, -0.0);
        yield return ("arr.u8", GgufValueType.Array, new GgufArray(GgufValueType.UInt8, new byte[] { 0, 1, 255 }));
        yield return ("arr.i8", GgufValueType.Array, new GgufArray(GgufValueType.Int8, new sbyte[] { -128, 0, 127 }));
        yield return ("arr.u16", GgufValueType.Array, new GgufArray(GgufValueType.UInt16, new ushort[] { 0, 65535 }));
        yield return ("arr.i16", GgufValueType.Array, new GgufArray(GgufValueType.Int16, new short[] { -32768, 32767 }));
        yield return ("arr.u32", GgufValueType.Array, new GgufArray(GgufValueType.UInt32, new uint[] { 0, uint.MaxValue, 7 }));
        yield return ("arr.i32", GgufValueType.Array, new GgufArray(GgufValueType.Int32, new int[] { int.MinValue, -1, int.MaxValue }));
        yield return ("arr.f32", GgufValueType.Array, new GgufArray(GgufValueType.Float32, new float[] { NaNPayload, NegNaN, -0f, float.PositiveInfinity, 1e-45f }));
        yield return ("arr.bool", GgufValueType.Array, new GgufArray(GgufValueType.Bool, new bool[] { true, false, true }));
        yield return ("arr.str", GgufValueType.Array, new GgufArray(GgufValueType.String, new string[] { "", "a", "🦙", "x y" }));
        yield return ("arr.u64", GgufValueType.Array, new GgufArray(GgufValueType.UInt64, new ulong[] { ulong.MaxValue, 0 }));
        yield return ("arr.i64", GgufValueType.Array, new GgufArray(GgufValueType.Int64, new long[] { long.MinValue, long.MaxValue }));
        yield return ("arr.f64", GgufValueType.Array, new GgufArray(GgufValueType.Float64, new double[] { NaNPayload64, -0.0, double.MaxValue }));
        foreach (var t in Enum.GetValues<GgufValueType>())
            yield return ($"arr.empty.{t}", GgufValueType.Array, new GgufArray(t, Array.CreateInstance(ClrType(t), 0)));
        yield return ("arr.nested", GgufValueType.Array, new GgufArray(GgufValueType.Array, new GgufArray[]
        {
            new(GgufValueType.Int32, new int[] { 1, 2, 3 }),
            new(GgufValueType.String, new string[] { "x", "" }),
            new(GgufValueType.Array, new GgufArray[] { new(GgufValueType.Float64, new double[] { 2.5 }), new(GgufValueType.UInt8, Array.Empty<byte>()) }),
            new(GgufValueType.Array, Array.Empty<GgufArray>()),
        }));
        // Nested as deep as the reader allows (8 array levels).
        var deep = new GgufArray(GgufValueType.UInt16, new ushort[] { 42 });
        for (int i = 0; i < 7; i++) deep = new GgufArray(GgufValueType.Array, new[] { deep, deep });
        yield return ("arr.deep", GgufValueType.Array, deep);
    }

    internal static Type ClrType(GgufValueType t) => t switch
    {
        GgufValueType.UInt8 => typeof(byte), GgufValueType.Int8 => typeof(sbyte), GgufValueType.UInt16 => typeof(ushort),
        GgufValueType.Int16 => typeof(short), GgufValueType.UInt32 => typeof(uint), GgufValueType.Int32 => typeof(int),
        GgufValueType.Float32 => typeof(float), GgufValueType.Bool => typeof(bool), GgufValueType.String => typeof(string),
        GgufValueType.UInt64 => typeof(ulong), GgufValueType.Int64 => typeof(long), GgufValueType.Float64 => typeof(double),
        _ => typeof(GgufArray),
    };

    [Fact]
    public void EveryValueTypeRoundTrips()
    {
        var values = Values().ToArray();
        Assert.Equal(13, values.Select(v => v.Type).Distinct().Count());
        var w = new GgufWriter();
        foreach (var (k, t, v) in values) w.Add(k, t, v);
        using var f = GgufFile.FromMemory(w.ToArray());
        Assert.Equal(3, f.Version);
        Assert.Equal(values.Length, f.MetadataCount);
        Assert.Equal(values.Select(v => v.Key), f.Metadata.Select(m => m.Key));   // order kept
        foreach (var (k, t, v) in values)
        {
            var got = f.Get(k);
            Assert.Equal(t, got.Type);
            var obj = got.ToObject();
            Assert.True(GgufObjects.Comparer.Equals(v, obj), $"{k}: wrote {GgufObjects.Show(v)}, read {GgufObjects.Show(obj)}");
            Assert.NotNull(got.ToDisplayString());
        }
        Assert.Equal(uint.MaxValue, f.Get("u32.max").AsUInt32Bits());
        Assert.Equal(0x8000_0000u, f.Get("i32.min").AsUInt32Bits());
        Assert.Throws<GgufFormatException>(() => f.Get("u64.max").AsInt64());
        Assert.Equal(long.MinValue, f.Get("i64.min").AsInt64());
        Assert.Equal("▁héllo wörld 🦙 中文 \u0000 \n\t\"\\ \uFFFD", f.GetString("str.unicode"));
        Assert.Equal(["", "a", "🦙", "x y"], f.Get("arr.str").AsStringArray());
        Assert.Equal(BitConverter.SingleToUInt32Bits(NaNPayload), BitConverter.SingleToUInt32Bits(f.Get("arr.f32").AsSpan<float>()[0]));
        Assert.Equal("[42]", f.Get("arr.deep").Elements().First().Elements().First().Elements().First().Elements().First()
            .Elements().First().Elements().First().Elements().First().ToDisplayString());
    }

    [Fact]
    public void RoundTripsAsSoleValueToo()
    {
        // Each value alone, so a value's payload is also checked at the very end of the file.
        foreach (var (k, t, v) in Values())
        {
            using var f = GgufFile.FromMemory(new GgufWriter().Add(k, t, v).ToArray());
            Assert.True(GgufObjects.Comparer.Equals(v, f.Get(k).ToObject()), k);
        }
    }

    /// <summary>Smallest shape that is valid for the type, and a bigger 3-d one.</summary>
    public static TheoryData<GgmlType> FixedSizeTypes()
    {
        var d = new TheoryData<GgmlType>();
        foreach (var t in TensorTypes.All) d.Add(t.Type);
        return d;
    }

    [Theory, MemberData(nameof(FixedSizeTypes))]
    public void TensorsOfEveryTypeRoundTrip(GgmlType type)
    {
        var info = TensorTypes.Get(type);
        var rng = new Random((int)type);
        long[][] shapes = [[info.BlockSize], [info.BlockSize * 3L, 5], [info.BlockSize * 2L, 3, 2, 1], [0, 4], []];
        if (info.BlockSize != 1) shapes = shapes[..4];   // a scalar (0 dims) has row length 1
        var w = new GgufWriter();
        var data = new List<byte[]>();
        for (int i = 0; i < shapes.Length; i++)
        {
            long n = 1; foreach (var x in shapes[i]) n *= x;
            long ne0 = shapes[i].Length > 0 ? shapes[i][0] : 1;
            var bytes = new byte[ne0 == 0 ? 0 : info.RowBytes(ne0) * (n / ne0)];
            rng.NextBytes(bytes);
            data.Add(bytes);
            w.AddTensor($"t{i}", type, shapes[i], bytes);
        }
        using var f = GgufFile.FromMemory(w.ToArray());
        Assert.Equal(shapes.Length, f.Tensors.Count);
        Assert.Equal(0, f.DataOffset % 32);
        for (int i = 0; i < shapes.Length; i++)
        {
            var t = f.Tensors[i];
            Assert.Equal($"t{i}", t.Name);
            Assert.Equal(info, t.Type);
            Assert.Equal(shapes[i], t.Shape);
            Assert.Equal(0, t.Offset % 32);
            Assert.Equal(data[i].Length, t.ByteSize);
            Assert.True(data[i].AsSpan().SequenceEqual(f.GetTensorData(t).Span), $"{type} t{i} bytes");
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(8)]
    [InlineData(64)]
    [InlineData(4096)]
    public void AlignmentFromMetadataIsUsed(uint alignment)
    {
        var rng = new Random(1);
        var w = new GgufWriter().Add("general.alignment", alignment).Add("pad", "xyz");
        var blobs = new[] { 4, 100, 36, 2 }.Select(n => { var b = new byte[n * 4]; rng.NextBytes(b); return b; }).ToArray();
        for (int i = 0; i < blobs.Length; i++) w.AddTensor($"t{i}", GgmlType.F32, [blobs[i].Length / 4], blobs[i]);
        Assert.Equal((int)alignment, w.Alignment);
        var bytes = w.ToArray();
        using var f = GgufFile.FromMemory(bytes);
        Assert.Equal((int)alignment, f.Alignment);
        Assert.Equal(0, f.DataOffset % alignment);
        Assert.Equal(0, bytes.Length % alignment);
        for (int i = 0; i < blobs.Length; i++)
        {
            Assert.Equal(0, f.Tensors[i].Offset % alignment);
            Assert.True(blobs[i].AsSpan().SequenceEqual(f.GetTensorData(f.Tensors[i]).Span));
        }
        if (alignment == 64) Assert.Contains(f.Tensors, t => t.Offset % 128 == 64);   // not accidentally 128-aligned
    }

    [Fact]
    public void OutputIsDeterministic()
    {
        static byte[] Build()
        {
            var w = new GgufWriter();
            foreach (var (k, t, v) in Values()) w.Add(k, t, v);
            var rng = new Random(7);
            foreach (var info in TensorTypes.All)
            {
                var b = new byte[info.BytesPerBlock * 2];
                rng.NextBytes(b);
                w.AddTensor(info.Name, info.Type, [info.BlockSize * 2L], b);
            }
            return w.ToArray();
        }
        var a = Build();
        Assert.Equal(a, Build());
        // Stream and array paths agree too.
        var path = Path.Combine(Path.GetTempPath(), $"microlm-gguf-{Guid.NewGuid():N}.gguf");
        try
        {
            var w = new GgufWriter();
            foreach (var (k, t, v) in Values()) w.Add(k, t, v);
            w.WriteTo(path);
            Assert.Equal(new GgufWriter().Apply(Values()).ToArray(), File.ReadAllBytes(path));
            using var f = GgufFile.Open(path);
            Assert.Equal(Values().Count(), f.MetadataCount);
        }
        finally { File.Delete(path); }
    }

    [SharedTheory]
    [InlineData("models/gguf/stories260K-Q4_K_M-fallback.gguf")]
    [InlineData("models/gguf/stories260K-F32.gguf")]
    [InlineData("tokenizer-vectors/ggml-vocab-llama-spm.gguf")]
    public void RealFileRewrittenThroughTheWriterReadsBackTheSame(string rel)
    {
        var bytes = File.ReadAllBytes(SharedData.Path(rel.Split('/')));
        using var f = GgufFile.FromMemory(bytes);
        var w = new GgufWriter();
        foreach (var (k, v) in f.Metadata) w.Add(k, v.Type, v.ToObject());
        foreach (var t in f.Tensors) w.AddTensor(t.Name, t.Type.Type, t.Shape, f.GetTensorData(t).ToArray());
        var rewritten = w.ToArray();
        using var g = GgufFile.FromMemory(rewritten);
        Assert.Equal(f.Metadata.Select(m => m.Key), g.Metadata.Select(m => m.Key));
        foreach (var (k, v) in f.Metadata)
        {
            Assert.Equal(v.Type, g.Get(k).Type);
            Assert.True(GgufObjects.Comparer.Equals(v.ToObject(), g.Get(k).ToObject()), k);
        }
        Assert.Equal(f.Tensors.Select(t => (t.Name, t.Type, t.ShapeText, t.ByteSize)), g.Tensors.Select(t => (t.Name, t.Type, t.ShapeText, t.ByteSize)));
        foreach (var t in f.Tensors)
            Assert.True(f.GetTensorData(t).Span.SequenceEqual(g.GetTensorData(g.FindTensor(t.Name)!).Span), t.Name);
        // llama.cpp's writer lays files out the same way ours does (v3, 32-aligned, tensors in order,
        // each padded), so the rewrite is byte-identical to the original.
        Assert.Equal(bytes.Length, rewritten.Length);
        Assert.True(bytes.AsSpan().SequenceEqual(rewritten), "rewritten file differs from the original");
    }
}

internal static class GgufWriterTestExtensions
{
    public static GgufWriter Apply(this GgufWriter w, IEnumerable<(string Key, GgufValueType Type, object Value)> values)
    {
        foreach (var (k, t, v) in values) w.Add(k, t, v);
        return w;
    }
}
