using System.Globalization;
using MicroLm.Gguf;
using MicroLm.Quantization;
using MicroLm.Tensors;

namespace MicroLm.Cli;

/// <summary>`microlm quantize IN.gguf OUT.gguf TYPE [--threads N] [--allow-requantize]`: llama-quantize's
/// presets and per-tensor rules; one progress line per tensor on stderr; the output is written to a
/// temporary file beside OUT and renamed only when complete.</summary>
public static class QuantizeCommand
{
    public static int Run(Options o, TextWriter stdout, TextWriter stderr)
    {
        if (o.Positional.Count != 3)
            throw new UsageException("usage: microlm quantize IN.gguf OUT.gguf TYPE [--threads N] [--allow-requantize]");
        string input = o.Positional[0], output = o.Positional[1], typeName = o.Positional[2];
        var preset = QuantPreset.Find(typeName)
            ?? throw new UsageException($"unknown quantization type '{typeName}'; known types: {QuantPreset.Names}");
        int threads = o.Int(Environment.ProcessorCount, "--threads", "-t");
        if (threads < 1) throw new UsageException("--threads must be at least 1");
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
        long after = SafeWrite(output, writer.WriteTo);
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{Path.GetFileName(output)}: {preset.Name} (file type {(uint)preset.FileType}), {before / 1048576.0:F2} MiB -> {after / 1048576.0:F2} MiB, " +
            $"{8.0 * writer.TensorBytes / elements:F2} bits per weight"));
        return 0;
    }

    /// <summary>Writes through a temporary file in the output's folder, renamed over the output when complete;
    /// on any failure the temporary file is removed and the output is untouched. Returns the file size.</summary>
    internal static long SafeWrite(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full) ?? ".";
        if (!Directory.Exists(dir)) throw new IOException($"cannot write '{path}': folder '{dir}' does not exist");
        string temp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            long size;
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
                size = fs.Length;
            }
            File.Move(temp, full, overwrite: true);
            return size;
        }
        catch (UnauthorizedAccessException e)
        {
            TryDelete(temp);
            throw new IOException($"cannot write '{path}': {e.Message}");
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
