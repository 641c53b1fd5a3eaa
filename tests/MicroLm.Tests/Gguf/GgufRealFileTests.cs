using MicroLm.Gguf;

namespace MicroLm.Tests.Gguf;

/// <summary>Every real GGUF in shared/ opens and matches the numbers in its documentation
/// (shared/models/gguf/SOURCES.md and shared/tokenizer-vectors/README.md).</summary>
public class GgufRealFileTests
{
    // file, bytes, general.file_type (null = absent), keys, tensor type counts
    public static TheoryData<string, long, long?, int, string> Models => new()
    {
        { "stories260K-F32.gguf", 1185376, null, 19, "F32 48" },
        { "stories260K-F16.gguf", 601248, 1, 21, "F16 37, F32 11" },
        { "stories260K-Q8_0.gguf", 379168, 7, 21, "F16 5, F32 11, Q8_0 32" },
        { "stories260K-Q4_0.gguf", 260640, 2, 21, "F16 5, F32 11, Q4_0 32" },
        { "stories260K-Q4_K_M-fallback.gguf", 304096, 15, 21, "F16 5, F32 11, Q5_0 29, Q8_0 3" },
    };

    [SharedFact]
    public void ModelTableCoversEveryModelFile()
    {
        var listed = Models.Select(r => (string)r[0]).Order().ToArray();
        var present = Directory.GetFiles(SharedData.Path("models", "gguf"), "*.gguf").Select(Path.GetFileName).Order().ToArray();
        Assert.Equal(listed, present);
    }

    [SharedTheory, MemberData(nameof(Models))]
    public void ModelFileMatchesSources(string name, long bytes, long? fileType, int keys, string typeCounts)
    {
        using var f = GgufFile.Open(SharedData.Path("models", "gguf", name));
        Assert.Equal(3, f.Version);
        Assert.Equal(bytes, f.Length);
        Assert.Equal(32, f.Alignment);
        Assert.False(f.ContainsKey("general.alignment"));
        Assert.Equal(0, f.DataOffset % 32);
        Assert.Equal(keys, f.MetadataCount);
        Assert.Equal(48, f.Tensors.Count);
        Assert.Equal(typeCounts, TypeCounts(f));
        Assert.Equal(fileType, f.GetInt("general.file_type"));
        Assert.Equal(fileType == null ? null : 2, f.GetInt("general.quantization_version"));

        Assert.Equal("llama", f.Architecture);
        Assert.Equal("llama", f.GetString("general.name"));
        Assert.Equal("llama", f.GetString("tokenizer.ggml.model"));
        Assert.Equal(128, f.GetInt("llama.context_length"));
        Assert.Equal(64, f.GetInt("llama.embedding_length"));
        Assert.Equal(172, f.GetInt("llama.feed_forward_length"));
        Assert.Equal(8, f.GetInt("llama.attention.head_count"));
        Assert.Equal(4, f.GetInt("llama.attention.head_count_kv"));
        Assert.Equal(5, f.GetInt("llama.block_count"));
        Assert.Equal(8, f.GetInt("llama.rope.dimension_count"));
        Assert.Equal(GgufValueType.Float32, f.Get("llama.attention.layer_norm_rms_epsilon").Type);
        Assert.Equal(1e-5f, f.GetFloat("llama.attention.layer_norm_rms_epsilon"));
        Assert.Equal(GgufValueType.UInt32, f.Get("llama.context_length").Type);
        Assert.Equal(0, f.GetInt("tokenizer.ggml.unknown_token_id"));
        Assert.Equal(1, f.GetInt("tokenizer.ggml.bos_token_id"));
        Assert.Equal(2, f.GetInt("tokenizer.ggml.eos_token_id"));
        Assert.Equal(uint.MaxValue, f.Get("tokenizer.ggml.seperator_token_id").AsUInt32Bits());
        Assert.Equal(uint.MaxValue, f.Get("tokenizer.ggml.padding_token_id").AsUInt32Bits());
        Assert.False(f.ContainsKey("tokenizer.ggml.pre"));

        var tokens = f.Get("tokenizer.ggml.tokens").AsStringArray();
        Assert.Equal(512, tokens.Length);
        Assert.Equal(["<unk>", "<s>", "</s>", "<0x00>"], tokens[..4]);
        Assert.Equal("<0xFF>", tokens[258]);
        Assert.Equal(["\u2581t", "he", "\u2581a"], tokens[259..262]);
        var scores = f.Get("tokenizer.ggml.scores").AsSpan<float>();
        Assert.Equal(512, scores.Length);
        Assert.Equal(0f, scores[258]);
        Assert.True(scores[259] == 0 && float.IsNegative(scores[259]), "score 259 is -0.0");
        Assert.Equal(-1f, scores[260]);
        Assert.Equal(-252f, scores[511]);
        var tt = f.Get("tokenizer.ggml.token_type").AsSpan<int>().ToArray();
        Assert.Equal("1:253 2:1 3:2 6:256", Histogram(tt));
        Assert.Equal([2, 3, 3, 6], tt[..4]);

        // Shapes from the per-tensor table; the F32 file is in converter order, the others not.
        Assert.Equal(name == "stories260K-F32.gguf" ? "token_embd.weight" : "output.weight", f.Tensors[0].Name);
        Assert.Equal([64L, 512], f.FindTensor("token_embd.weight")!.Shape);
        Assert.Equal([64L, 512], f.FindTensor("output.weight")!.Shape);
        Assert.Equal([64L], f.FindTensor("output_norm.weight")!.Shape);
        for (int l = 0; l < 5; l++)
        {
            Assert.Equal([64L, 64], f.FindTensor($"blk.{l}.attn_q.weight")!.Shape);
            Assert.Equal([64L, 32], f.FindTensor($"blk.{l}.attn_k.weight")!.Shape);
            Assert.Equal([64L, 32], f.FindTensor($"blk.{l}.attn_v.weight")!.Shape);
            Assert.Equal([64L, 172], f.FindTensor($"blk.{l}.ffn_up.weight")!.Shape);
            Assert.Equal([172L, 64], f.FindTensor($"blk.{l}.ffn_down.weight")!.Shape);
            Assert.Equal("F32", f.FindTensor($"blk.{l}.attn_norm.weight")!.Type.Name);
        }
        if (name.Contains("Q4_K_M"))
            Assert.Equal("Q5_0 Q5_0 Q8_0 Q5_0 Q8_0", string.Join(" ", Enumerable.Range(0, 5).Select(l => f.FindTensor($"blk.{l}.attn_v.weight")!.Type.Name)));
        Assert.Equal(f.Length - f.DataOffset, f.Tensors.Max(t => t.Offset + (t.ByteSize + 31) / 32 * 32));
        Assert.Equal(f.Tensors.Sum(t => t.ElementCount), f.ParameterCount);
        foreach (var t in f.Tensors) Assert.Equal(t.ByteSize, f.GetTensorData(t).Length);
    }

    [SharedFact]
    public void OutputIsACopyOfTheEmbeddingInTheF32File()
    {
        using var f = GgufFile.Open(SharedData.Path("models", "gguf", "stories260K-F32.gguf"));
        var emb = f.GetTensorData(f.FindTensor("token_embd.weight")!).Span;
        Assert.True(emb.SequenceEqual(f.GetTensorData(f.FindTensor("output.weight")!).Span));
        Assert.Contains(emb.ToArray(), b => b != 0);
    }

    // file, bytes, tokenizer.ggml.model, pre (null = absent), tokens, merges (0 = absent), architecture, token_type counts
    public static TheoryData<string, long, string, string?, int, int, string, string> Vocabs => new()
    {
        { "ggml-vocab-baichuan.gguf", 1340998, "llama", null, 64000, 0, "baichuan", "1:63741 2:1 3:2 6:256" },
        { "ggml-vocab-bert-bge.gguf", 627549, "bert", "bert-bge", 30522, 0, "bert", "1:30517 3:5" },
        { "ggml-vocab-deepseek-coder.gguf", 1156067, "gpt2", "deepseek-coder", 32256, 31757, "llama", "1:32000 3:2 4:254" },
        { "ggml-vocab-deepseek-llm.gguf", 3970167, "gpt2", "deepseek-llm", 102400, 99757, "llama", "1:100000 3:2 4:2398" },
        { "ggml-vocab-falcon.gguf", 2287728, "gpt2", "falcon", 65024, 64784, "falcon", "1:65012 3:12" },
        { "ggml-vocab-gpt-2.gguf", 1766807, "gpt2", "gpt-2", 50257, 50000, "gpt2", "1:50256 3:1" },
        { "ggml-vocab-gpt-neox.gguf", 1771431, "gpt2", null, 50432, 50009, "gptneox", "1:50252 3:2 4:178" },
        { "ggml-vocab-llama-spm.gguf", 723869, "llama", "default", 32000, 0, "llama", "1:31741 2:1 3:2 6:256" },
        { "ggml-vocab-mpt.gguf", 1771393, "gpt2", "mpt", 50432, 50009, "mpt", "1:50252 3:2 4:178" },
        { "ggml-vocab-phi-3.gguf", 726019, "llama", "default", 32064, 0, "phi3", "1:31741 2:53 3:13 4:1 6:256" },
        { "ggml-vocab-refact.gguf", 1720710, "gpt2", "refact", 49216, 48891, "refact", "1:49133 3:19 4:64" },
        { "ggml-vocab-starcoder.gguf", 1719346, "gpt2", "starcoder", 49152, 48872, "starcoder2", "1:49114 3:38" },
    };

    [SharedFact]
    public void VocabTableCoversEveryTopLevelVocabFile()
    {
        var listed = Vocabs.Select(r => (string)r[0]).Order().ToArray();
        var present = Directory.GetFiles(SharedData.Path("tokenizer-vectors"), "*.gguf", SearchOption.TopDirectoryOnly)
            .Select(Path.GetFileName).Order().ToArray();
        Assert.Equal(listed, present);
    }

    [SharedTheory, MemberData(nameof(Vocabs))]
    public void VocabFileMatchesReadme(string name, long bytes, string model, string? pre, int tokens, int merges, string arch, string tokenTypes)
    {
        using var f = GgufFile.Open(SharedData.Path("tokenizer-vectors", name));
        Assert.Equal(bytes, f.Length);
        Assert.Empty(f.Tensors);
        Assert.Equal(arch, f.Architecture);
        Assert.Equal(model, f.GetString("tokenizer.ggml.model"));
        Assert.Equal(pre, f.GetString("tokenizer.ggml.pre"));
        var tok = f.Get("tokenizer.ggml.tokens");
        Assert.Equal((GgufValueType.Array, GgufValueType.String, (long)tokens), (tok.Type, tok.ElementType, tok.Count));
        Assert.Equal(tokens, tok.AsStringArray().Length);
        if (merges == 0) Assert.False(f.ContainsKey("tokenizer.ggml.merges"));
        else
        {
            var m = f.Get("tokenizer.ggml.merges");
            Assert.Equal((GgufValueType.String, (long)merges), (m.ElementType, m.Count));
            Assert.All(m.AsStringArray(), s => Assert.Contains(' ', s));
        }
        var tt = f.Get("tokenizer.ggml.token_type");
        Assert.Equal(GgufValueType.Int32, tt.ElementType);
        Assert.Equal(tokenTypes, Histogram(tt.AsSpan<int>().ToArray()));
        // Every value decodes and displays.
        foreach (var (_, v) in f.Metadata) Assert.NotEmpty(v.ToDisplayString());
    }

    [SharedFact]
    public void GptNeoxAndMptShareTheirArrays()
    {
        using var a = GgufFile.Open(SharedData.Path("tokenizer-vectors", "ggml-vocab-gpt-neox.gguf"));
        using var b = GgufFile.Open(SharedData.Path("tokenizer-vectors", "ggml-vocab-mpt.gguf"));
        foreach (var key in new[] { "tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type" })
            Assert.Equal(a.Get(key).ToObject(), b.Get(key).ToObject(), GgufObjects.Comparer);
    }

    internal static string TypeCounts(GgufFile f) => string.Join(", ",
        f.Tensors.GroupBy(t => t.Type.Name).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key} {g.Count()}"));

    internal static string Histogram(int[] values) => string.Join(" ",
        values.GroupBy(v => v).OrderBy(g => g.Key).Select(g => $"{g.Key}:{g.Count()}"));
}
