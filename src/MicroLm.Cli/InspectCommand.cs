using System.Globalization;
using System.Text.Json;
using MicroLm.Gguf;
using MicroLm.Models;

namespace MicroLm.Cli;

/// <summary>`microlm inspect FILE [--json]`.</summary>
public static class InspectCommand
{
    public static readonly CommandSpec Spec = new()
    {
        Name = "inspect",
        Synopsis = "FILE [--json]",
        Summary = "Prints a GGUF file's header, metadata, tensors and memory envelope.",
        Flags = [Flag.Switch("--json", "print JSON instead of text")],
        MinPositional = 1,
        MaxPositional = 1,
        Run = (o, stdout, _) => Run(o, stdout),
        ContractExample = ["$MODEL"],
    };

    public static int Run(Options o, TextWriter stdout)
    {
        using var file = GgufFile.Open(o.Positional[0]);
        ModelConfig? config = null;
        string? configError = null;
        try { config = ModelConfig.FromGguf(file); }
        // A key of the wrong type (say a string embedding_length) is a GgufFormatException from the accessor;
        // the file itself parsed, so inspect still shows it and only skips the memory estimate.
        catch (Exception e) when (e is MicroLmException or GgufFormatException) { configError = e.Message; }
        if (o.Has("--json")) WriteJson(file, config, stdout);
        else WriteText(file, config, configError, stdout);
        return 0;
    }

    /// <summary>A key or tensor name as printed: as is, or quoted with escapes when it holds characters a
    /// terminal would act on (a name is whatever bytes the file says).</summary>
    private static string Shown(string name) => name.Any(GgufValue.IsUnsafeForTerminal) || name.Length == 0 ? GgufValue.Quote(name) : name;

    private static long WeightBytes(GgufFile f) => f.Tensors.Sum(t => t.ByteSize);

    private static void WriteText(GgufFile f, ModelConfig? c, string? configError, TextWriter w)
    {
        w.WriteLine($"GGUF version {f.Version}, {f.Length:N0} bytes, alignment {f.Alignment}, data at byte {f.DataOffset}");
        w.WriteLine($"metadata: {f.MetadataCount} keys");
        foreach (var (key, value) in f.Metadata)
            w.WriteLine($"  {Shown(key)} ({value.Describe()}) = {value.ToDisplayString()}");
        w.WriteLine($"tensors: {f.Tensors.Count}");
        foreach (var t in f.Tensors)
            w.WriteLine($"  {Shown(t.Name),-32} {t.Type.Name,-8} {t.ShapeText,-20} {t.ByteSize,12:N0} bytes");
        w.WriteLine($"parameters: {f.ParameterCount:N0}");
        if (c != null)
        {
            long weights = WeightBytes(f), kv32 = c.KvCacheBytes(c.ContextLength, 4), kv16 = c.KvCacheBytes(c.ContextLength, 2);
            long scratch = c.ScratchBytes(c.ContextLength), ssm = c.RecurrentStateBytes;
            w.WriteLine($"memory at context {c.ContextLength}:");
            w.WriteLine($"  weights        {weights,14:N0} bytes (read in place from the file)");
            w.WriteLine($"  KV cache F32   {kv32,14:N0} bytes");
            w.WriteLine($"  KV cache F16   {kv16,14:N0} bytes");
            int local = Enumerable.Range(0, c.Layers).Count(l => c.AttentionWindow(l) > 0);
            if (local > 0) // a sliding-window layer keeps a ring of its window (+ a batch), not the whole context
                w.WriteLine($"                 ({local} of {c.Layers} layers local: window {c.AttentionWindows.Where(x => x > 0).Max()}, " +
                            $"{KvCache.Rows(c.ContextLength, c.AttentionWindows.Where(x => x > 0).Max(), 32):N0} rows each at batch 32; " +
                            $"{c.Layers - local} global: {c.ContextLength:N0} rows)");
            if (ssm > 0) w.WriteLine($"  SSM state      {ssm,14:N0} bytes (convolution windows and scan states, F32; constant)");
            w.WriteLine($"  scratch        {scratch,14:N0} bytes");
            w.WriteLine($"  total (F32 KV) {weights + kv32 + ssm + scratch,14:N0} bytes");
            w.WriteLine($"  total (F16 KV) {weights + kv16 + ssm + scratch,14:N0} bytes");
        }
        else if (f.Tensors.Count > 0 && configError != null)
            w.WriteLine($"memory: not estimated ({configError})");
    }

    private static void WriteJson(GgufFile f, ModelConfig? c, TextWriter w)
    {
        using var ms = new MemoryStream();
        using (var j = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            j.WriteStartObject();
            j.WriteNumber("version", f.Version);
            j.WriteNumber("bytes", f.Length);
            j.WriteNumber("alignment", f.Alignment);
            j.WriteNumber("data_offset", f.DataOffset);
            j.WriteStartObject("metadata");
            foreach (var (key, value) in f.Metadata)
            {
                j.WritePropertyName(key);
                WriteValue(j, value, 16);
            }
            j.WriteEndObject();
            j.WriteStartArray("tensors");
            foreach (var t in f.Tensors)
            {
                j.WriteStartObject();
                j.WriteString("name", t.Name);
                j.WriteString("type", t.Type.Name);
                j.WriteStartArray("shape");
                foreach (var d in t.Shape) j.WriteNumberValue(d);
                j.WriteEndArray();
                j.WriteNumber("bytes", t.ByteSize);
                j.WriteNumber("offset", t.Offset);
                j.WriteEndObject();
            }
            j.WriteEndArray();
            j.WriteNumber("parameters", f.ParameterCount);
            if (c != null)
            {
                j.WriteStartObject("memory");
                j.WriteNumber("context_length", c.ContextLength);
                j.WriteNumber("weights", WeightBytes(f));
                j.WriteNumber("kv_cache_f32", c.KvCacheBytes(c.ContextLength, 4));
                j.WriteNumber("kv_cache_f16", c.KvCacheBytes(c.ContextLength, 2));
                j.WriteNumber("ssm_state", c.RecurrentStateBytes);
                j.WriteNumber("sliding_window_layers", Enumerable.Range(0, c.Layers).Count(l => c.AttentionWindow(l) > 0));
                j.WriteNumber("scratch", c.ScratchBytes(c.ContextLength));
                j.WriteNumber("total_f32_kv", WeightBytes(f) + c.KvCacheBytes(c.ContextLength, 4) + c.RecurrentStateBytes + c.ScratchBytes(c.ContextLength));
                j.WriteEndObject();
            }
            j.WriteEndObject();
        }
        w.WriteLine(System.Text.Encoding.UTF8.GetString(ms.ToArray()));
    }

    private static void WriteValue(Utf8JsonWriter j, GgufValue v, int maxItems)
    {
        switch (v.Type)
        {
            case GgufValueType.String: j.WriteStringValue(v.AsString()); break;
            case GgufValueType.Bool: j.WriteBooleanValue(v.AsBool()); break;
            case GgufValueType.Float32:
            case GgufValueType.Float64:
                double d = v.AsDouble();
                if (double.IsFinite(d)) j.WriteNumberValue(d); else j.WriteStringValue(d.ToString(CultureInfo.InvariantCulture));
                break;
            case GgufValueType.UInt64: j.WriteNumberValue((ulong)v.ToObject()); break;
            case GgufValueType.Array:
                j.WriteStartObject();
                j.WriteString("type", v.ElementType.ToString());
                j.WriteNumber("count", v.Count);
                j.WriteStartArray("first");
                foreach (var e in v.Elements().Take(maxItems)) WriteValue(j, e, maxItems);
                j.WriteEndArray();
                j.WriteEndObject();
                break;
            default: j.WriteNumberValue(v.AsInt64()); break;
        }
    }
}
