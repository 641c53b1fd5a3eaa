using MicroLm.Synthetic;
using MicroLm.Tensors;

// Usage: MicroLm.MakeModels OUT_DIR SHARED_DIR [NAME...]
// Writes synthetic GGUF models (seeded random weights, same bytes on every machine) into OUT_DIR.
// SHARED_DIR is ../shared (for the GPT-NeoX tokenizer). With no names, writes every model below.
if (args.Length < 2)
{
    Console.Error.WriteLine("usage: MicroLm.MakeModels OUT_DIR SHARED_DIR [NAME...]");
    Console.Error.WriteLine("models: " + string.Join(", ", Models.Names.Concat(FalconH1Models.Names).Concat(LlamaModels.Names).Concat(LlamaModels.BenchNames).Concat(Models.HfNames)));
    return 2;
}
string outDir = args[0], shared = args[1];
Directory.CreateDirectory(outDir);
var names = args.Length > 2 ? args[2..] : [.. Models.Names, .. FalconH1Models.Names, .. LlamaModels.Names];
foreach (var name in names)
{
    // Hugging Face checkpoints (a folder; `microlm convert hf` turns them into GGUF).
    if (Models.HfNames.Contains(name))
    {
        var hf = Models.GetHf(name, Path.Combine(shared, "tokenizer-vectors", "ggml-vocab-gpt-2.gguf"));
        string folder = Path.Combine(outDir, name);
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        SyntheticHf.Write(folder, hf);
        Console.WriteLine($"wrote {folder}/");
        continue;
    }
    string path = Path.Combine(outDir, name + ".gguf"), temp = path + ".tmp";
    if (FalconH1Models.Names.Contains(name)) SyntheticFalconH1.Write(temp, FalconH1Models.Get(name));
    else if (LlamaModels.Names.Contains(name) || LlamaModels.BenchNames.Contains(name)) SyntheticLlama.Write(temp, LlamaModels.Get(name));
    else SyntheticGptNeoX.Write(temp, Models.Get(name, Path.Combine(shared, "tokenizer-vectors", "ggml-vocab-gpt-neox.gguf")));
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

    /// <summary>GPT-Neo checkpoints in Hugging Face's layout with GPT-2's tokenizer (50257 tokens): TinyStories-1M's and
    /// -33M's real configurations (d 64, 8 layers / d 768, 4 layers; 16 heads, FFN 4·d, window 256, context 2048,
    /// global/local alternating), and a TinyStories-1M shape with a 16-position window (golden traces cross it).</summary>
    public static readonly string[] HfNames = ["tinystories-1m-synthetic-hf", "tinystories-33m-synthetic-hf", "gptneo-window16-synthetic-hf"];

    public static SyntheticHfOptions GetHf(string name, string tokenizer) => name switch
    {
        "tinystories-1m-synthetic-hf" => SyntheticHf.TinyStories1M(tokenizer, 1),
        "tinystories-33m-synthetic-hf" => SyntheticHf.TinyStories33M(tokenizer, 33),
        "gptneo-window16-synthetic-hf" => SyntheticHf.TinyStories1M(tokenizer, 16) with { Window = 16 },
        _ => throw new ArgumentException($"unknown checkpoint '{name}'"),
    };

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

/// <summary>Falcon-H1 (attention + Mamba2): a small GQA shape with two SSM groups and grouped RMSNorm for the golden
/// traces, and Falcon-H1-Tiny-90M's shape for benchmarks (generated 512/32768-piece vocabularies).</summary>
internal static class FalconH1Models
{
    public static readonly string[] Names =
    [
        "falcon-h1-synthetic-F32", "falcon-h1-synthetic-Q8_0", "falcon-h1-tiny90m-synthetic-F32", "falcon-h1-tiny90m-synthetic-Q8_0",
        "falcon-h1-state64-synthetic-Q8_0",
    ];

    private static SyntheticFalconH1Options Small(GgmlType type) => new()
    {
        Dim = 64, HiddenDim = 192, Layers = 3, Heads = 4, KvHeads = 2, SsmInner = 128, SsmHeads = 8, SsmGroups = 2, SsmState = 16,
        ContextLength = 512, VocabSize = 512, MatrixType = type, Seed = 61,
    };

    public static SyntheticFalconH1Options Get(string name) => name switch
    {
        "falcon-h1-synthetic-F32" => Small(GgmlType.F32),
        "falcon-h1-synthetic-Q8_0" => Small(GgmlType.Q8_0),
        "falcon-h1-tiny90m-synthetic-F32" => SyntheticFalconH1.Tiny90M(GgmlType.F32),
        "falcon-h1-tiny90m-synthetic-Q8_0" => SyntheticFalconH1.Tiny90M(GgmlType.Q8_0),
        // Falcon-H1-Tiny's SSM state size (64), where prefill's scan keeps each state row in registers across tokens.
        "falcon-h1-state64-synthetic-Q8_0" => Small(GgmlType.Q8_0) with { SsmHeads = 4, SsmGroups = 1, SsmState = 64, Seed = 64 },
        _ => throw new ArgumentException($"unknown model '{name}'"),
    };
}

/// <summary>LLaMA with every row length a multiple of 256 (dim 256, FFN 768), so that `microlm quantize` writes
/// real K-quant and IQ4_XS tensors (llama-quantize's rules fall back to 32-value types for other widths):
/// the end-to-end check of those types' kernels, natively and in WebAssembly.</summary>
internal static class LlamaModels
{
    public static readonly string[] Names = ["llama-256-synthetic-F32", "llama-256-synthetic-mixed"];
    /// <summary>Written only when named (63 MB): a shape big enough for matmuls to dominate a token, for kernel speed.</summary>
    public static readonly string[] BenchNames = ["llama-512-synthetic-F32"];

    public static SyntheticLlamaOptions Get(string name) => name switch
    {
        "llama-256-synthetic-F32" => new()
        {
            Dim = 256, HiddenDim = 768, Layers = 2, Heads = 4, KvHeads = 2, ContextLength = 256, VocabSize = 512, Seed = 256,
        },
        // Every type the runtime computes with, each as a matmul weight (golden traces of every kernel, C# and compiled).
        "llama-256-synthetic-mixed" => Get("llama-256-synthetic-F32") with
        {
            EmbeddingType = GgmlType.Q4_K, OutputType = GgmlType.Q6_K,
            TypeOverrides = new Dictionary<string, GgmlType>
            {
                ["blk.0.attn_q.weight"] = GgmlType.BF16, ["blk.0.attn_k.weight"] = GgmlType.Q4_1, ["blk.0.attn_v.weight"] = GgmlType.Q5_0,
                ["blk.0.attn_output.weight"] = GgmlType.Q5_1, ["blk.0.ffn_gate.weight"] = GgmlType.IQ4_NL, ["blk.0.ffn_up.weight"] = GgmlType.Q2_K,
                ["blk.0.ffn_down.weight"] = GgmlType.Q3_K,
                ["blk.1.attn_q.weight"] = GgmlType.Q4_K, ["blk.1.attn_k.weight"] = GgmlType.Q5_K, ["blk.1.attn_v.weight"] = GgmlType.IQ4_XS,
                ["blk.1.attn_output.weight"] = GgmlType.Q4_0, ["blk.1.ffn_gate.weight"] = GgmlType.Q8_0, ["blk.1.ffn_up.weight"] = GgmlType.F16,
                ["blk.1.ffn_down.weight"] = GgmlType.F32,
            },
        },
        "llama-512-synthetic-F32" => new()
        {
            Dim = 512, HiddenDim = 1536, Layers = 4, Heads = 8, KvHeads = 8, ContextLength = 512, VocabSize = 2048, Seed = 512,
        },
        _ => throw new ArgumentException($"unknown model '{name}'"),
    };
}
