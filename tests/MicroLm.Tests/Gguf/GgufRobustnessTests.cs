using System.Diagnostics;
using MicroLm.Gguf;
using MicroLm.Tensors;
using Xunit.Abstractions;

namespace MicroLm.Tests.Gguf;

/// <summary>Truncated and corrupted files: the reader either parses them or throws
/// <see cref="GgufFormatException"/>; it never throws anything else, never hangs and never allocates
/// much more than the file's own size.</summary>
public class GgufRobustnessTests(ITestOutputHelper output)
{
    /// <summary>Allowed allocation beyond the file's length for one parse. The parser allocates one
    /// object per metadata entry and tensor it actually reads (never per claimed count), the decoded keys
    /// and names (a key is at most 65,535 bytes by the GGUF spec, so a corrupt key length can make one
    /// string of at most 128 KiB of UTF-16; tensor names are at most 64 bytes), the lookup dictionaries,
    /// and on failure the exception, its message and stack trace. 256 KiB covers one maximal corrupt key
    /// plus all of that for the real files here (about 75 entries) with room to spare.</summary>
    private const long AllocationSlack = 256 * 1024;

    /// <summary>Thread CPU time (<see cref="ThreadCpuTime"/>): a parse loops or balloons long before this.</summary>
    private static readonly TimeSpan MaxParseTime = TimeSpan.FromSeconds(1);

    private sealed class Stats
    {
        public int Parsed, Rejected;
        public long MaxOverAllocation = long.MinValue;
        public override string ToString() => $"{Parsed} parsed, {Rejected} rejected, max allocation over file size {MaxOverAllocation:N0} bytes";
    }

    /// <summary>Parses <paramref name="bytes"/>; fails the test on any exception but GgufFormatException,
    /// on a slow parse, or on excess allocation. After a successful parse every value and tensor is touched.</summary>
    private static void Check(ReadOnlyMemory<byte> bytes, Stats stats, string what)
    {
        var cpu = ThreadCpuTime.Now();
        long before = GC.GetAllocatedBytesForCurrentThread();
        GgufFile? f = null;
        string outcome = "parsed";
        try { f = GgufFile.FromMemory(bytes); }
        catch (GgufFormatException e)
        {
            outcome = e.Message;
            Assert.True(e.Offset >= 0, $"{what}: negative offset in '{e.Message}'");
            Assert.DoesNotContain('\n', e.Message);
        }
        catch (Exception e) { Assert.Fail($"{what}: {e.GetType().Name} instead of GgufFormatException: {e}"); }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        var spent = ThreadCpuTime.Now() - cpu;
        Assert.True(spent < MaxParseTime, $"{what}: parse took {spent} of CPU time");
        Assert.True(allocated <= bytes.Length + AllocationSlack, $"{what}: parse allocated {allocated:N0} bytes for a {bytes.Length:N0}-byte file; {outcome}");
        stats.MaxOverAllocation = System.Math.Max(stats.MaxOverAllocation, allocated - bytes.Length);
        if (f == null) { stats.Rejected++; return; }
        stats.Parsed++;
        using (f) Touch(f, what);
    }

    private static void Touch(GgufFile f, string what)
    {
        try
        {
            foreach (var (key, value) in f.Metadata)
            {
                _ = value.Describe();
                _ = value.ToDisplayString();
            }
            long sum = 0;
            foreach (var t in f.Tensors)
            {
                var span = f.GetTensorData(t).Span;
                if (span.Length > 0) sum += span[0] + span[^1];
                _ = t.ElementCount + t.Rows + t.Columns;
                Assert.Same(t, f.FindTensor(t.Name));
            }
            _ = f.ParameterCount + sum;
        }
        catch (Exception e) when (e is GgufFormatException or MicroLmException) { }
        catch (Exception e) { Assert.Fail($"{what}: touching a parsed file threw {e.GetType().Name}: {e}"); }
    }

    private static byte[] Q8 => File.ReadAllBytes(SharedData.Path("models", "gguf", "stories260K-Q8_0.gguf"));

    [SharedFact]
    public void EveryPrefixOfTheQ8HeaderFails()
    {
        var bytes = Q8;
        long dataOffset;
        using (var full = GgufFile.FromMemory(bytes)) dataOffset = full.DataOffset;
        var stats = new Stats();
        for (int n = 0; n < dataOffset; n++)
        {
            var e = Assert.Throws<GgufFormatException>(() => GgufFile.FromMemory(bytes.AsMemory(0, n)));
            Assert.InRange(e.Offset, 0, n);
        }
        // A sample of longer prefixes: all cut tensor data, so all fail, pointing at a tensor's offset field
        // (offset past the end) or into the data section (tensor runs past the end).
        var rng = new Random(260);
        for (int i = 0; i < 200; i++)
        {
            int n = rng.Next((int)dataOffset, bytes.Length - 31);   // the last tensor's bytes end 0..31 bytes before EOF
            var e = Assert.Throws<GgufFormatException>(() => GgufFile.FromMemory(bytes.AsMemory(0, n)));
            Assert.InRange(e.Offset, 0, bytes.Length);
            Assert.Matches("past the end|needs more bytes than the file holds", e.Message);
            Check(bytes.AsMemory(0, n), stats, $"prefix {n}");
        }
        Check(bytes, stats, "whole file");
        Assert.Equal(1, stats.Parsed);
    }

    [SharedFact]
    public void PrefixesOfAVocabFileFail()
    {
        // Every prefix of a 627 KB file is ~2*10^11 bytes of parsing; instead every prefix of the first
        // 32 KiB (all the scalar keys and the start of the token array), every prefix within 40 bytes of
        // each metadata entry's start and end, and 200 random ones.
        var bytes = File.ReadAllBytes(SharedData.Path("tokenizer-vectors", "ggml-vocab-bert-bge.gguf"));
        var lengths = new SortedSet<int>(Enumerable.Range(0, 32 * 1024));
        using (var full = GgufFile.FromMemory(bytes))
        {
            foreach (var (_, v) in full.Metadata)
                for (int d = -40; d <= 40; d++) { lengths.Add((int)v.Offset + d); lengths.Add((int)(v.Offset + ValueLength(v)) + d); }
        }
        var rng = new Random(627);
        for (int i = 0; i < 200; i++) lengths.Add(rng.Next(bytes.Length));
        lengths.RemoveWhere(n => n < 0 || n >= bytes.Length);
        var stats = new Stats();
        foreach (int n in lengths)
        {
            var e = Assert.Throws<GgufFormatException>(() => GgufFile.FromMemory(bytes.AsMemory(0, n)));
            Assert.InRange(e.Offset, 0, n);
        }
        foreach (int n in lengths.Where(n => n % 97 == 0 || n > 32 * 1024)) Check(bytes.AsMemory(0, n), stats, $"prefix {n}");
        output.WriteLine($"{lengths.Count} prefixes; {stats}");
    }

    /// <summary>Payload length of a value, from the writer's encoding of it.</summary>
    private static long ValueLength(GgufValue v)
    {
        if (v.Type != GgufValueType.Array) return v.Type == GgufValueType.String ? 8 + v.AsUtf8().Length : v.Type switch
        {
            GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
            GgufValueType.UInt16 or GgufValueType.Int16 => 2,
            GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
            _ => 4,
        };
        return v.Elements().Sum(ValueLength);
    }

    /// <summary>A synthetic file with every value type, nested arrays and tensors of several types,
    /// small enough to copy for every insertion and deletion.</summary>
    private static byte[] Synthetic()
    {
        var w = new GgufWriter().Apply(GgufWriterRoundTripTests.Values());
        var rng = new Random(3);
        foreach (var (type, shape) in new (GgmlType, long[])[] { (GgmlType.F32, [8, 2]), (GgmlType.Q8_0, [64]), (GgmlType.Q4_K, [256]), (GgmlType.F16, [0, 3]) })
        {
            var info = TensorTypes.Get(type);
            var data = new byte[shape[0] == 0 ? 0 : info.RowBytes(shape[0]) * (shape.Length > 1 ? shape[1] : 1)];
            rng.NextBytes(data);
            w.AddTensor($"{type}.weight", type, shape, data);
        }
        return w.ToArray();
    }

    [SharedFact]
    public void RandomMutationsParseOrFailCleanly()
    {
        var sw = Stopwatch.StartNew();
        var rng = new Random(20250220);
        int cases = 0;

        // 1. In-place byte changes in the header of the real Q8_0 file (the 365 KB of tensor data stays
        //    behind it, so offsets and sizes are checked against a real data section). Restored after each case.
        var q8 = Q8;
        int q8Header;
        using (var f = GgufFile.FromMemory(q8)) q8Header = (int)f.DataOffset;
        var statsQ8 = new Stats();
        cases += MutateInPlace(q8, q8Header, 45_000, rng, statsQ8, "Q8_0");

        // 2. In-place changes in a vocab-only file, half of them in its first 2 KiB where the scalar keys are.
        var vocab = File.ReadAllBytes(SharedData.Path("tokenizer-vectors", "ggml-vocab-llama-spm.gguf"));
        var statsVocab = new Stats();
        cases += MutateInPlace(vocab, vocab.Length, 10_000, rng, statsVocab, "llama-spm", hotPrefix: 2048);

        // 3. Changes, insertions and deletions in the synthetic file and in the Q8_0 header on its own.
        var statsShift = new Stats();
        var synthetic = Synthetic();
        var q8Head = q8[..q8Header];
        for (int i = 0; i < 45_000; i++, cases++)
        {
            var source = i % 3 == 0 ? q8Head : synthetic;
            var bytes = new List<byte>(source);
            int edits = rng.Next(1, 9);
            for (int e = 0; e < edits; e++)
            {
                int kind = rng.Next(4);
                int at = rng.Next(bytes.Count + 1);
                if (kind == 0 && bytes.Count > 0) bytes.RemoveRange(System.Math.Min(at, bytes.Count - 1), System.Math.Min(rng.Next(1, 9), bytes.Count - System.Math.Min(at, bytes.Count - 1)));
                else if (kind == 1) for (int k = rng.Next(1, 9); k > 0; k--) bytes.Insert(at, (byte)rng.Next(256));
                else if (bytes.Count > 0) bytes[System.Math.Min(at, bytes.Count - 1)] = Interesting(rng);
            }
            Check(bytes.ToArray(), statsShift, $"shift case {i} ({(i % 3 == 0 ? "Q8_0 header" : "synthetic")})");
        }

        output.WriteLine($"{cases} cases in {sw.Elapsed.TotalSeconds:F1} s");
        output.WriteLine($"Q8_0 in place: {statsQ8}");
        output.WriteLine($"llama-spm in place: {statsVocab}");
        output.WriteLine($"insert/delete: {statsShift}");
        Assert.True(cases >= 100_000);
        // The mutations must exercise both outcomes, or the test proves little.
        Assert.True(statsQ8.Parsed > 1000 && statsQ8.Rejected > 1000, statsQ8.ToString());
        Assert.True(statsShift.Parsed > 100 && statsShift.Rejected > 1000, statsShift.ToString());
    }

    /// <summary>Mutates 1-8 bytes of <paramref name="file"/> below <paramref name="limit"/>, checks, restores.</summary>
    private static int MutateInPlace(byte[] file, int limit, int count, Random rng, Stats stats, string name, int hotPrefix = 0)
    {
        Span<int> positions = stackalloc int[8];
        Span<byte> saved = stackalloc byte[8];
        for (int i = 0; i < count; i++)
        {
            int edits = rng.Next(1, 9);
            int range = hotPrefix > 0 && i % 2 == 0 ? hotPrefix : limit;
            for (int e = 0; e < edits; e++)
            {
                positions[e] = rng.Next(range);
                saved[e] = file[positions[e]];
            }
            for (int e = 0; e < edits; e++) file[positions[e]] = Interesting(rng);
            Check(file, stats, $"{name} case {i}: bytes {string.Join(", ", positions[..edits].ToArray().Select(p => $"{p}={file[p]:x2}"))}");
            for (int e = edits - 1; e >= 0; e--) file[positions[e]] = saved[e];
        }
        return count;
    }

    /// <summary>A random byte, biased to the values that break length and type fields.</summary>
    private static byte Interesting(Random rng) => rng.Next(4) switch
    {
        0 => (byte)rng.Next(256),
        1 => (byte)rng.Next(16),
        2 => (byte)(0xFF - rng.Next(4)),
        _ => (byte)(rng.Next(2) == 0 ? 0 : 1 << rng.Next(8)),
    };
}
