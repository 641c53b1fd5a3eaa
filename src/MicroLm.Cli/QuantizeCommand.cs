using System.Globalization;
using MicroLm.Gguf;
using MicroLm.IO;
using MicroLm.Quantization;
using MicroLm.Tensors;

namespace MicroLm.Cli;

/// <summary>`microlm quantize IN.gguf OUT.gguf TYPE [--threads N] [--allow-requantize]`: llama-quantize's
/// presets and per-tensor rules; one progress line per tensor on stderr; the output is written to a
/// temporary file beside OUT and renamed only when complete.</summary>
public static class QuantizeCommand
{
    public static readonly CommandSpec Spec = new()
    {
        Name = "quantize",
        Synopsis = "IN.gguf OUT.gguf TYPE [--threads N] [--allow-requantize]",
        Summary = "Writes IN in a llama-quantize preset (TYPE: " + QuantPreset.Names + ") with llama.cpp's per-tensor rules and bytes; progress on stderr.",
        Flags = [Flag.Int("-t|--threads", "N", "threads encoding rows; the bytes never depend on it (default: the processor count)", min: 1),
            Flag.Switch("--allow-requantize", "convert tensors that are already quantized (their rounding compounds)")],
        MinPositional = 3,
        MaxPositional = 3,
        Run = Run,
        ContractExample = ["$MODEL", "$OUT", "Q4_K_M"],
    };

    public static int Run(Options o, TextWriter stdout, TextWriter stderr)
    {
        string input = o.Positional[0], output = o.Positional[1], typeName = o.Positional[2];
        var preset = QuantPreset.Find(typeName)
            ?? throw new UsageException($"unknown quantization type '{typeName}'; known types: {QuantPreset.Names}");
        int threads = System.Math.Min(o.Int(Environment.ProcessorCount, "--threads"), Environment.ProcessorCount);
        if (Path.GetFullPath(input) == Path.GetFullPath(output))
            throw new UsageException("the output file must differ from the input file");

        string outDir = Path.GetDirectoryName(Path.GetFullPath(output)) ?? ".";
        if (!Directory.Exists(outDir)) throw new IOException($"cannot write '{output}': folder '{outDir}' does not exist");
        using var file = GgufFile.Open(input);
        var options = new ModelQuantizer.Options
        {
            Threads = threads,
            AllowRequantize = o.Has("--allow-requantize"),
            Warning = w => stderr.WriteLine($"warning: {w}"),
            Progress = t => stderr.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"[{t.Index,4}/{t.Count,4}] {t.Name,-36} {GgufFile.FormatShape(t.Shape),-16} {TensorTypes.Get(t.From).Name,6} -> {TensorTypes.Get(t.To).Name,-6} {t.BytesBefore / 1048576.0,8:F3} MiB -> {t.BytesAfter / 1048576.0,8:F3} MiB")),
        };
        var writer = ModelQuantizer.Quantize(file, preset, options);
        long before = file.Tensors.Sum(t => t.ByteSize);
        long elements = file.Tensors.Sum(t => t.ElementCount);
        long after;
        using (var target = SafeFile.Create(output))
        {
            writer.WriteTo(target.Stream);
            after = target.Stream.Position;
            target.Commit();
        }
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{Path.GetFileName(output)}: {preset.Name} (file type {(uint)preset.FileType}), {before / 1048576.0:F2} MiB -> {after / 1048576.0:F2} MiB, " +
            $"{8.0 * writer.TensorBytes / elements:F2} bits per weight"));
        return 0;
    }
}
