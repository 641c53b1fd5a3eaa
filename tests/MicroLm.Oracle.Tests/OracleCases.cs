using MicroLm.Models;
using MicroLm.Synthetic;
using MicroLm.Tensors;

namespace MicroLm.Oracle.Tests;

/// <summary>Model files for the oracle: the shared stories260K GGUFs, our llama2.c conversion, and
/// synthetic models written once per test run into a temporary folder.</summary>
public sealed class OracleFiles : IDisposable
{
    public string Dir { get; } = Directory.CreateTempSubdirectory("microlm-oracle-").FullName;
    private readonly Dictionary<string, string> _made = [];
    private readonly object _gate = new();

    public static string Shared(string relative) => SharedData.Path("models", relative);

    /// <summary>A file under shared/ (e.g. "tokenizer-vectors/ggml-vocab-gpt-neox.gguf").</summary>
    public static string SharedFile(string relative) => SharedData.Path(relative);

    private static SyntheticVocabulary? _llama2Vocab;
    internal static SyntheticVocabulary Llama2Vocab => _llama2Vocab ??= SyntheticVocabulary.FromLlama2c(Shared("llama2c/tokenizer.bin"), 32000);

    /// <summary>The path of a synthetic model, written on first use.</summary>
    internal string Synthetic(string name, Func<SyntheticLlamaOptions> options)
    {
        lock (_gate)
        {
            if (_made.TryGetValue(name, out var path)) return path;
            path = Path.Combine(Dir, name + ".gguf");
            SyntheticLlama.Write(path, options());
            _made[name] = path;
            return path;
        }
    }

    /// <summary>The K-quant source model (<see cref="KQuantCases.Source"/>) quantized by llama.cpp to
    /// <paramref name="ftype"/>, made on first use.</summary>
    public string Quantized(string ftype)
    {
        string source = Synthetic("kquant-source-f32", () => KQuantCases.Source);
        lock (_gate)
        {
            string key = "quantized-" + ftype;
            if (_made.TryGetValue(key, out var path)) return path;
            path = Path.Combine(Dir, $"kquant-{ftype}.gguf");
            KQuantCases.Quantize(source, path, KQuantCases.Ftype(ftype));
            _made[key] = path;
            return path;
        }
    }

    /// <summary>The path of a synthetic GPT-NeoX model, written on first use.</summary>
    internal string SyntheticGptNeoX(string name, Func<SyntheticGptNeoXOptions> options)
    {
        lock (_gate)
        {
            if (_made.TryGetValue(name, out var path)) return path;
            path = Path.Combine(Dir, name + ".gguf");
            MicroLm.Synthetic.SyntheticGptNeoX.Write(path, options());
            _made[name] = path;
            return path;
        }
    }

    /// <summary>The path of a model file written by <paramref name="write"/> on first use.</summary>
    public string Make(string name, Action<string> write)
    {
        lock (_gate)
        {
            if (_made.TryGetValue(name, out var path)) return path;
            path = Path.Combine(Dir, name + ".gguf");
            write(path);
            _made[name] = path;
            return path;
        }
    }

    /// <summary>stories260K.bin + tok512.bin converted by Llama2cCheckpoint.ToGguf.</summary>
    public string ConvertedStories260K()
    {
        lock (_gate)
        {
            if (_made.TryGetValue("converted", out var path)) return path;
            path = Path.Combine(Dir, "stories260K-converted.gguf");
            File.WriteAllBytes(path, Llama2cCheckpoint.ToGguf(File.ReadAllBytes(Shared("llama2c/stories260K.bin")), File.ReadAllBytes(Shared("llama2c/tok512.bin"))));
            _made["converted"] = path;
            return path;
        }
    }

    public void Dispose()
    {
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>The synthetic shapes: small ones of every weight type and attention layout, and a stories15M-shaped one.</summary>
internal static class SyntheticCases
{
    public static SyntheticLlamaOptions Get(string name) => name switch
    {
        // Plain multi-head attention, untied classifier, generated 512-piece vocabulary.
        "mha-f32-untied" => new() { Dim = 64, HiddenDim = 192, Layers = 2, Heads = 4, KvHeads = 4, VocabSize = 512, Seed = 11 },
        // Grouped-query attention (8 query heads share 2 KV heads), tied classifier, head size 16.
        "gqa-f32-tied" => new() { Dim = 128, HiddenDim = 320, Layers = 3, Heads = 8, KvHeads = 2, VocabSize = 512, TiedOutput = true, Seed = 12 },
        // Head size 64 and a large RoPE base (500000, as LLaMA 3 uses), multi-query (1 KV head).
        "mqa-f32-rope500k" => new() { Dim = 256, HiddenDim = 512, Layers = 2, Heads = 4, KvHeads = 1, VocabSize = 512, RopeFreqBase = 500000f, Seed = 13 },
        "gqa-f16-untied" => new() { Dim = 128, HiddenDim = 320, Layers = 3, Heads = 8, KvHeads = 2, VocabSize = 512, MatrixType = GgmlType.F16, Seed = 14 },
        "mha-f16-tied" => new() { Dim = 64, HiddenDim = 192, Layers = 2, Heads = 4, KvHeads = 4, VocabSize = 512, MatrixType = GgmlType.F16, TiedOutput = true, Seed = 15 },
        "mha-q8_0-tied" => new() { Dim = 128, HiddenDim = 352, Layers = 2, Heads = 4, KvHeads = 4, VocabSize = 512, MatrixType = GgmlType.Q8_0, TiedOutput = true, Seed = 16 },
        "gqa-q8_0-untied" => new() { Dim = 128, HiddenDim = 320, Layers = 3, Heads = 8, KvHeads = 2, VocabSize = 512, MatrixType = GgmlType.Q8_0, Seed = 17 },
        "gqa-q4_0-untied" => new() { Dim = 128, HiddenDim = 320, Layers = 3, Heads = 8, KvHeads = 2, VocabSize = 512, MatrixType = GgmlType.Q4_0, Seed = 18 },
        "mha-q4_0-tied" => new() { Dim = 64, HiddenDim = 192, Layers = 2, Heads = 2, KvHeads = 2, VocabSize = 512, MatrixType = GgmlType.Q4_0, TiedOutput = true, Seed = 19 },
        "gqa-q4_1-untied" => new() { Dim = 128, HiddenDim = 320, Layers = 2, Heads = 8, KvHeads = 4, VocabSize = 512, MatrixType = GgmlType.Q4_1, Seed = 20 },
        "gqa-q5_0-untied" => new() { Dim = 128, HiddenDim = 320, Layers = 2, Heads = 8, KvHeads = 4, VocabSize = 512, MatrixType = GgmlType.Q5_0, Seed = 21 },
        "gqa-q5_1-untied" => new() { Dim = 128, HiddenDim = 320, Layers = 2, Heads = 8, KvHeads = 4, VocabSize = 512, MatrixType = GgmlType.Q5_1, Seed = 22 },
        // Mixed: Q8_0 matrices, F16 embedding, Q4_0 classifier, one Q5_1 attn_v.
        "mixed-untied" => new()
        {
            Dim = 128, HiddenDim = 320, Layers = 2, Heads = 8, KvHeads = 2, VocabSize = 512, MatrixType = GgmlType.Q8_0,
            EmbeddingType = GgmlType.F16, OutputType = GgmlType.Q4_0, Seed = 23,
            TypeOverrides = new Dictionary<string, GgmlType> { ["blk.1.attn_v.weight"] = GgmlType.Q5_1 },
        },
        // stories15M's shape (dim 288, hidden 768, 6 layers, 6 heads of 48, llama2's 32000-piece vocabulary).
        "stories15M-f32-tied" => new() { Dim = 288, HiddenDim = 768, Layers = 6, Heads = 6, KvHeads = 6, ContextLength = 256, Vocabulary = OracleFiles.Llama2Vocab, TiedOutput = true, Seed = 24 },
        "stories15M-q8_0-tied" => new() { Dim = 288, HiddenDim = 768, Layers = 6, Heads = 6, KvHeads = 6, ContextLength = 256, Vocabulary = OracleFiles.Llama2Vocab, TiedOutput = true, MatrixType = GgmlType.Q8_0, Seed = 24 },
        "stories15M-gqa-f16-untied" => new() { Dim = 288, HiddenDim = 768, Layers = 6, Heads = 6, KvHeads = 2, ContextLength = 256, Vocabulary = OracleFiles.Llama2Vocab, MatrixType = GgmlType.F16, Seed = 25 },
        _ => throw new ArgumentException(name),
    };
}

/// <summary>Synthetic GPT-NeoX models of Pythia-14M's shape (d 128, 6 layers, 4 heads of 32, 8 rotary dims,
/// FFN 512) with the real GPT-NeoX tokenizer padded to Pythia's 50304 tokens.</summary>
internal static class SyntheticGptNeoXCases
{
    private static string Tokenizer => OracleFiles.SharedFile("tokenizer-vectors/ggml-vocab-gpt-neox.gguf");

    public static SyntheticGptNeoXOptions Get(string name) => name switch
    {
        "pythia14m-parallel-f32" => SyntheticGptNeoX.Pythia("14M", Tokenizer, GgmlType.F32, seed: 41) with { ContextLength = 256 },
        "pythia14m-sequential-f32" => SyntheticGptNeoX.Pythia("14M", Tokenizer, GgmlType.F32, seed: 42) with { ContextLength = 256, ParallelResidual = false },
        "pythia14m-parallel-f16" => SyntheticGptNeoX.Pythia("14M", Tokenizer, GgmlType.F16, seed: 41) with { ContextLength = 256 },
        "pythia14m-sequential-f16" => SyntheticGptNeoX.Pythia("14M", Tokenizer, GgmlType.F16, seed: 42) with { ContextLength = 256, ParallelResidual = false },
        "pythia14m-parallel-q8_0" => SyntheticGptNeoX.Pythia("14M", Tokenizer, GgmlType.Q8_0, seed: 41) with { ContextLength = 256 },
        "pythia14m-sequential-q8_0" => SyntheticGptNeoX.Pythia("14M", Tokenizer, GgmlType.Q8_0, seed: 42) with { ContextLength = 256, ParallelResidual = false },
        _ => throw new ArgumentException(name),
    };
}
