using MicroLm.Cli;
using MicroLm.Gguf;
using MicroLm.Quantization;
using MicroLm.Synthetic;

namespace MicroLm.Tests.Quants;

/// <summary>`microlm quantize`: thread-count invariance, the metadata it writes, and one clear error with
/// no file left behind for bad input. (Byte equality with llama.cpp is in the oracle tests.)</summary>
public sealed class QuantizeCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("microlm-quantize-").FullName;
    private string Source => _source ??= MakeSource();
    private string? _source;

    private string MakeSource()
    {
        string path = System.IO.Path.Combine(_dir, "src.gguf");
        SyntheticLlama.Write(path, new SyntheticLlamaOptions { Dim = 256, HiddenDim = 256, Layers = 2, Heads = 4, KvHeads = 2, VocabSize = 300, Seed = 77 });
        return path;
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = CliMain.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    [Theory]
    [InlineData("Q4_K_M")]
    [InlineData("IQ4_XS")]
    [InlineData("Q8_0")]
    public void Same_bytes_for_any_thread_count(string type)
    {
        var outputs = new List<byte[]>();
        foreach (int t in new[] { 1, 2, 3 })
        {
            string path = System.IO.Path.Combine(_dir, $"{type}-t{t}.gguf");
            var r = Cli("quantize", Source, path, type, "--threads", t.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Assert.True(r.Code == 0, r.Err);
            outputs.Add(File.ReadAllBytes(path));
        }
        Assert.Equal(outputs[0], outputs[1]);
        Assert.Equal(outputs[0], outputs[2]);
        // The CLI caps threads at the processor count; the library takes any number.
        using var src = GgufFile.Open(Source);
        Assert.Equal(outputs[0], ModelQuantizer.Quantize(src, QuantPreset.Find(type)!, new ModelQuantizer.Options { Threads = 7 }).ToArray());
    }

    [Fact]
    public void Metadata_is_carried_over_with_file_type_set()
    {
        string path = System.IO.Path.Combine(_dir, "q6.gguf");
        Assert.Equal(0, Cli("quantize", Source, path, "q6_k").Code);
        using var a = GgufFile.Open(Source);
        using var b = GgufFile.Open(path);
        Assert.Equal(18, b.GetInt("general.file_type"));
        Assert.Equal(2, b.GetInt("general.quantization_version"));
        foreach (var (key, value) in a.Metadata)
            Assert.Equal(System.Text.Json.JsonSerializer.Serialize(value.ToObject()), System.Text.Json.JsonSerializer.Serialize(b.Get(key).ToObject()));
        Assert.All(b.Tensors.Where(t => t.Shape.Length == 1), t => Assert.Equal("F32", t.Type.Name));
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
    }

    [Fact]
    public void Unknown_type_is_one_clear_error_and_no_file()
    {
        string path = System.IO.Path.Combine(_dir, "x.gguf");
        var r = Cli("quantize", Source, path, "Q3_XL");
        Assert.Equal(1, r.Code);
        Assert.StartsWith("microlm: error: unknown quantization type 'Q3_XL'; known types: F32, F16", r.Err);
        Assert.Single(r.Err.Trim().Split('\n'));
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void Requantizing_a_quantized_file_is_refused_and_writes_nothing()
    {
        string q4 = System.IO.Path.Combine(_dir, "q4.gguf"), q8 = System.IO.Path.Combine(_dir, "q8.gguf");
        Assert.Equal(0, Cli("quantize", Source, q4, "Q4_0").Code);
        var r = Cli("quantize", q4, q8, "Q8_0");
        Assert.Equal(1, r.Code);
        Assert.Contains("is already Q", r.Err);
        Assert.Contains("--allow-requantize", r.Err);
        Assert.False(File.Exists(q8));
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
        // The same type again is a copy, not a requantization; with the flag it converts.
        Assert.Equal(0, Cli("quantize", q4, q8, "Q4_0").Code);
        Assert.Equal(0, Cli("quantize", q4, q8, "Q8_0", "--allow-requantize").Code);
    }

    [Fact]
    public void Unwritable_output_is_one_clear_error_and_no_partial_file()
    {
        string missingDir = System.IO.Path.Combine(_dir, "no-such-dir", "out.gguf");
        var r = Cli("quantize", Source, missingDir, "Q8_0");
        Assert.Equal(1, r.Code);
        Assert.StartsWith("microlm: error: cannot write", r.Err); // checked before any work
        Assert.Single(r.Err.Trim().Split('\n'));

        if (OperatingSystem.IsWindows() || Environment.UserName == "root") return; // root writes anywhere; the case above still ran
        string readOnlyDir = System.IO.Path.Combine(_dir, "ro");
        Directory.CreateDirectory(readOnlyDir);
        File.SetUnixFileMode(readOnlyDir, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        try
        {
            r = Cli("quantize", Source, System.IO.Path.Combine(readOnlyDir, "out.gguf"), "Q8_0");
            Assert.Equal(1, r.Code);
            Assert.Single(r.Err.Split('\n'), l => l.StartsWith("microlm: error: ", StringComparison.Ordinal));
            Assert.Empty(Directory.GetFiles(readOnlyDir));
        }
        finally
        {
            File.SetUnixFileMode(readOnlyDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    [Fact]
    public void Every_preset_reads_back_and_runs()
    {
        foreach (var p in QuantPreset.All)
        {
            string path = System.IO.Path.Combine(_dir, $"run-{p.Name}.gguf");
            Assert.Equal(0, Cli("quantize", Source, path, p.Name).Code);
            using var model = MicroLm.Model.Load(path);
            using var session = model.CreateSession(16, 1, 4);
            var logits = session.Evaluate([1, 5, 9]).ToArray();
            Assert.All(logits, v => Assert.True(float.IsFinite(v), p.Name));
        }
    }
}
