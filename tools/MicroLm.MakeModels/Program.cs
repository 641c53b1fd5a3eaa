using MicroLm.Synthetic;
using MicroLm.Tensors;

// Usage: MicroLm.MakeModels OUT_DIR SHARED_DIR [NAME...]
// Writes synthetic GGUF models (seeded random weights, same bytes on every machine) into OUT_DIR.
// SHARED_DIR is ../shared (for the GPT-NeoX tokenizer). With no names, writes every model below.
if (args.Length < 2)
{
    Console.Error.WriteLine("usage: MicroLm.MakeModels OUT_DIR SHARED_DIR [NAME...]");
    Console.Error.WriteLine("models: " + string.Join(", ", Models.Names));
    return 2;
}
string outDir = args[0], shared = args[1];
Directory.CreateDirectory(outDir);
var names = args.Length > 2 ? args[2..] : Models.Names;
foreach (var name in names)
{
    var options = Models.Get(name, Path.Combine(shared, "tokenizer-vectors", "ggml-vocab-gpt-neox.gguf"));
    string path = Path.Combine(outDir, name + ".gguf"), temp = path + ".tmp";
    SyntheticGptNeoX.Write(temp, options);
    File.Move(temp, path, overwrite: true);
    Console.WriteLine($"wrote {path} ({new FileInfo(path).Length:N0} bytes)");
}
return 0;

internal static class Models
{
    public static readonly string[] Names =
    [
        "pythia-14m-synthetic-F32", "pythia-14m-synthetic-Q8_0", "pythia-14m-sequential-synthetic-F16",
        "pythia-31m-synthetic-F32", "pythia-31m-synthetic-Q8_0", "pythia-70m-synthetic-F32", "pythia-70m-synthetic-Q8_0",
    ];

    /// <summary>Pythia's shapes with the real GPT-NeoX tokenizer (50304 tokens, padded as Pythia's files are).</summary>
    public static SyntheticGptNeoXOptions Get(string name, string tokenizer) => name switch
    {
        "pythia-14m-synthetic-F32" => SyntheticGptNeoX.Pythia("14M", tokenizer, GgmlType.F32, seed: 14),
        "pythia-14m-synthetic-Q8_0" => SyntheticGptNeoX.Pythia("14M", tokenizer, GgmlType.Q8_0, seed: 14),
        "pythia-14m-sequential-synthetic-F16" => SyntheticGptNeoX.Pythia("14M", tokenizer, GgmlType.F16, seed: 15) with { ParallelResidual = false },
        "pythia-31m-synthetic-F32" => SyntheticGptNeoX.Pythia("31M", tokenizer, GgmlType.F32, seed: 31),
        "pythia-31m-synthetic-Q8_0" => SyntheticGptNeoX.Pythia("31M", tokenizer, GgmlType.Q8_0, seed: 31),
        "pythia-70m-synthetic-F32" => SyntheticGptNeoX.Pythia("70M", tokenizer, GgmlType.F32, seed: 70),
        "pythia-70m-synthetic-Q8_0" => SyntheticGptNeoX.Pythia("70M", tokenizer, GgmlType.Q8_0, seed: 70),
        _ => throw new ArgumentException($"unknown model '{name}' (known: {string.Join(", ", Names)})"),
    };
}
