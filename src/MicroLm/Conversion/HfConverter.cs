using System.Text.Json;
using MicroLm.Gguf;
using MicroLm.Models;
using MicroLm.Tensors;
using MicroLm.Tensors.Quants;

namespace MicroLm.Conversion;

/// <summary>`microlm convert hf`: a Hugging Face checkpoint directory → one GGUF file. The family is
/// chosen by config.json's "architectures"; each family's mapping (keys, tensor names, re-layouts)
/// is one file (HfLlama, HfGptNeoX, HfGptNeo, HfFalconH1). The output is written to a temporary file beside it (IO.SafeFile) and renamed
/// only when complete and loadable.</summary>
internal static class HfConverter
{
    /// <summary>The families, by the Hugging Face class name in config.json's "architectures".</summary>
    public static readonly HfFamily[] Families = [new HfLlama(), new HfGptNeoX(), new HfGptNeo(), new HfFalconH1()];

    public static readonly string[] OutTypes = ["f32", "f16", "bf16", "q8_0", "auto"];

    /// <summary>Converts <paramref name="dir"/> into <paramref name="output"/>; returns the loaded result's config.</summary>
    public static ModelConfig Convert(string dir, string output, string outType = "auto", Action<string>? progress = null)
    {
        if (!OutTypes.Contains(outType)) throw new MicroLmException($"unknown --outtype '{outType}' (use {string.Join(", ", OutTypes)})");
        var writer = Build(dir, outType, progress);
        progress?.Invoke($"writing {output}");
        using (var file = IO.SafeFile.Create(output))
        {
            writer.WriteTo(file.Stream);
            file.Commit(check: temp => Model.Load(temp).Dispose()); // the result must load before it gets its name
        }
        using var model = Model.Load(output);
        return model.Config;
    }

    /// <summary>The GGUF of a checkpoint, in memory (the tests' entry).</summary>
    public static GgufWriter Build(string dir, string outType = "auto", Action<string>? progress = null)
    {
        // Every mapping reads config.json and the tokenizer files by type (GetInt32, GetString, ...); a value of another
        // type throws InvalidOperationException from System.Text.Json wherever it is read. Found by fuzzing (tests/fuzz/regressions/hf).
        try { return BuildChecked(dir, outType, progress); }
        // (and FormatException for a number that is not of the type asked for, such as 1.5 or 1e10 for GetInt32)
        catch (Exception e) when (e is InvalidOperationException or FormatException
                                  && e.Source?.StartsWith("System.Text.Json", StringComparison.Ordinal) == true) // its Source is "System.Text.Json.Rethrowable"
        {
            throw new MicroLmException($"{dir}: a value in the checkpoint's JSON files has the wrong type ({e.Message})");
        }
    }

    private static GgufWriter BuildChecked(string dir, string outType, Action<string>? progress)
    {
        using var ck = new HfCheckpoint(dir);
        var arch = ck.Config.TryGetProperty("architectures", out var a) && a.ValueKind == JsonValueKind.Array && a.GetArrayLength() > 0
            && a[0].ValueKind == JsonValueKind.String ? a[0].GetString()! : throw new MicroLmException($"{dir}/config.json has no \"architectures\"");
        var family = Families.FirstOrDefault(f => f.HfArchitecture == arch)
            ?? throw new MicroLmException($"architecture {arch} is not supported (supported: {string.Join(", ", Families.Select(f => f.HfArchitecture))})");
        var type = outType == "auto" ? AutoType(ck) : TypeOf(outType);
        var output = new HfOutput(family.Architecture, type, progress);
        output.Writer.Add("general.architecture", family.Architecture);
        output.Writer.Add("general.name", Path.GetFileName(Path.GetFullPath(dir).TrimEnd(Path.DirectorySeparatorChar)));
        family.Convert(ck, output);
        var unused = ck.Unused.Where(n => !family.IsBuffer(n)).ToList();
        if (unused.Count > 0)
            throw new MicroLmException($"checkpoint has tensors the {arch} mapping does not know: {string.Join(", ", unused.Take(5))}{(unused.Count > 5 ? ", ..." : "")}");
        output.Writer.Add("general.file_type", FileType(type));
        output.Writer.Add("general.quantization_version", 2u);
        return output.Writer;
    }

    private static GgmlType TypeOf(string t) => t switch
    {
        "f32" => GgmlType.F32, "f16" => GgmlType.F16, "bf16" => GgmlType.BF16, "q8_0" => GgmlType.Q8_0,
        _ => throw new MicroLmException($"unknown --outtype '{t}'"),
    };

    /// <summary>"auto": the checkpoint's own 16-bit precision, else F32 (llama.cpp guesses from the first tensor's dtype).</summary>
    private static GgmlType AutoType(HfCheckpoint ck) => ck.TensorNames.Select(n => ck.Peek(n).DType).FirstOrDefault() switch
    {
        "F16" => GgmlType.F16,
        "BF16" => GgmlType.BF16,
        _ => GgmlType.F32,
    };

    /// <summary>llama.cpp's general.file_type values.</summary>
    private static uint FileType(GgmlType t) => t switch
    {
        GgmlType.F32 => 0, GgmlType.F16 => 1, GgmlType.Q8_0 => 7, GgmlType.BF16 => 32,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };
}

/// <summary>One Hugging Face family's mapping to GGUF.</summary>
internal abstract class HfFamily
{
    /// <summary>The class name in config.json's "architectures" (e.g. "GPTNeoForCausalLM").</summary>
    public abstract string HfArchitecture { get; }
    /// <summary>general.architecture of the output.</summary>
    public abstract string Architecture { get; }
    /// <summary>Writes the hyperparameter keys, the tokenizer and the tensors.</summary>
    public abstract void Convert(HfCheckpoint ck, HfOutput output);
    /// <summary>Tensors the checkpoint may carry that are not weights (attention masks, rotary tables).</summary>
    public virtual bool IsBuffer(string name) => false;
}

/// <summary>The GGUF being built: 2-D weights in the chosen type (Q8_0 falls back to F16 for rows that are not
/// a multiple of 32, as llama.cpp's converter does), 1-D tensors always F32; progress per tensor.</summary>
internal sealed class HfOutput(string architecture, GgmlType matrixType, Action<string>? progress)
{
    public GgufWriter Writer { get; } = new();
    public string Architecture { get; } = architecture;
    public GgmlType MatrixType { get; } = matrixType;
    private int _count;

    public void Key(string key, uint value) => Writer.Add($"{Architecture}.{key}", value);
    public void Key(string key, float value) => Writer.Add($"{Architecture}.{key}", value);
    public void Key(string key, bool value) => Writer.Add($"{Architecture}.{key}", value);

    /// <summary>The four sizes every family writes first, in llama.cpp's order.</summary>
    public void Sizes(int contextLength, int embeddingLength, int blockCount, int feedForwardLength)
    {
        Key("context_length", (uint)contextLength);
        Key("embedding_length", (uint)embeddingLength);
        Key("block_count", (uint)blockCount);
        Key("feed_forward_length", (uint)feedForwardLength);
    }

    /// <summary>A weight matrix of rows × cols (PyTorch's [out, in]): GGUF shape [cols, rows].</summary>
    public void Matrix(string name, float[] values, long rows, long cols)
    {
        var type = MatrixType == GgmlType.Q8_0 && cols % 32 != 0 ? GgmlType.F16 : MatrixType;
        Add(name, type, [cols, rows], values, (int)cols);
    }

    public void Vector(string name, float[] values) => Add(name, GgmlType.F32, [values.Length], values, values.Length);

    /// <summary>An F32 tensor of any GGUF shape (innermost first), kept F32 whatever the output type (as llama.cpp
    /// keeps the SSM's convolution and per-head vectors).</summary>
    public void Floats(string name, float[] values, long[] shape) => Add(name, GgmlType.F32, shape, values, (int)shape[0]);

    private void Add(string name, GgmlType type, long[] shape, float[] values, int rowLength)
    {
        Writer.AddTensor(name, type, shape, Quantizer.Quantize(type, values, rowLength));
        progress?.Invoke($"[{++_count}] {name,-28} {TensorTypes.Get(type).Name,-5} {GgufFile.FormatShape(shape)}");
    }
}
