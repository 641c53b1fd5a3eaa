using System.Buffers.Binary;
using System.Text;
using MicroLm.Synthetic;
using MicroLm.Tensors;

namespace MicroLm.Fuzz;

/// <summary>The seed corpus: small valid inputs for each target (AFL++ mutates from these), written
/// deterministically so the committed corpus can be regenerated.</summary>
public static class FuzzSeeds
{
    public static void Write(string dir, string shared)
    {
        string tok512 = Path.Combine(shared, "models", "llama2c", "tok512.bin");
        void Put(string target, string name, byte[] bytes)
        {
            Directory.CreateDirectory(Path.Combine(dir, target));
            File.WriteAllBytes(Path.Combine(dir, target, name), bytes);
        }

        var vocab = SyntheticVocabulary.FromLlama2c(tok512, 32);
        Put("gguf", "llama-f32", SyntheticLlama.ToBytes(new SyntheticLlamaOptions
        { Dim = 16, HiddenDim = 32, Layers = 1, Heads = 2, KvHeads = 1, ContextLength = 16, Vocabulary = vocab, VocabSize = 32, TiedOutput = true }));
        Put("gguf", "llama-q8_0", SyntheticLlama.ToBytes(new SyntheticLlamaOptions
        { Dim = 32, HiddenDim = 64, Layers = 1, Heads = 2, KvHeads = 2, ContextLength = 16, Vocabulary = vocab, VocabSize = 32, MatrixType = GgmlType.Q8_0 }));

        Put("llama2c", "legacy-shared", Llama2c(8, 16, 1, 2, 1, 32, 16));
        Put("llama2c", "legacy-separate", Llama2c(8, 16, 1, 2, 2, -32, 8));

        // Hugging Face checkpoints of each family, tiny, with a 32-token vocabulary (tokenizer.json from its GGUF keys).
        string vocabGguf = Path.Combine(Path.GetTempPath(), $"microlm-seed-vocab-{Environment.ProcessId}.gguf");
        string hfDir = Directory.CreateTempSubdirectory("microlm-seed-hf-").FullName;
        try
        {
            File.WriteAllBytes(vocabGguf, SyntheticLlama.ToBytes(new SyntheticLlamaOptions
            { Dim = 8, HiddenDim = 16, Layers = 1, Heads = 2, KvHeads = 1, ContextLength = 16, Vocabulary = vocab, VocabSize = 32, TiedOutput = true }));
            SyntheticHfOptions[] shapes =
            [
                new() { Family = "llama", Dim = 8, Hidden = 8, Layers = 1, Heads = 2, KvHeads = 1, ContextLength = 16, TokenizerGguf = vocabGguf },
                new() { Family = "gptneox", Dim = 8, Hidden = 8, RotaryPct = 0.5f, Layers = 1, Heads = 2, KvHeads = 2, ContextLength = 16, DType = "F16", ExtraBuffers = true, TokenizerGguf = vocabGguf },
                new() { Family = "gptneo", Dim = 8, Hidden = 8, Layers = 2, Heads = 2, KvHeads = 2, ContextLength = 16, Window = 4, DType = "BF16", Tied = false, Shards = 2, TokenizerGguf = vocabGguf },
                new() { Family = "falconh1", Dim = 8, Hidden = 8, Layers = 1, Heads = 2, KvHeads = 1, ContextLength = 16, SsmInner = 8, SsmHeadDim = 4,
                        SsmGroups = 1, SsmState = 4, TokenizerGguf = vocabGguf },
            ];
            foreach (var o in shapes)
            {
                string d = Path.Combine(hfDir, o.Family);
                SyntheticHf.Write(d, o);
                Put("hf", o.Family, HfBundle.Join(Directory.GetFiles(d).Order(StringComparer.Ordinal).Select(f => (Path.GetFileName(f), File.ReadAllBytes(f)))));
            }
        }
        finally
        {
            File.Delete(vocabGguf);
            Directory.Delete(hfDir, true);
        }

        string[] texts = ["Once upon a time, there was a little girl.", "Hello world! 123 + 4.5e6 = ?", " ünïcödé 日本語 🙂\n\ttabs  and   spaces",
                          "<s>[INST] special </s> tokens", "don't we'll I'm", "\u0000\u0001 \u00ff"];
        for (int i = 0; i < texts.Length; i++) Put("tokenizer", $"text{i}", [(byte)(i * 37 % 256), .. Encoding.UTF8.GetBytes(texts[i])]);

        string[][] lines =
        [
            ["\u0001", "-m", "m.gguf", "-p", "Once upon", "-n", "4", "--temp", "0.5", "--top-p", "0.9", "--seed", "-1"],
            ["\u0003", "-m", "m.gguf", "--ids", "1 2 3", "--ignore-eos", "-n", "3", "--batch=8", "-t", "2"],
            ["\u0004", "llama2c", "a.bin", "--tokenizer", "t.bin", "-o", "o.gguf"],
            ["\u0005", "-m", "m.gguf", "-t", "1,2", "-p", "8", "-r", "2", "--all-logits"],
            ["\u0006", "f.gguf", "--json"],
        ];
        for (int i = 0; i < lines.Length; i++) Put("cli", $"line{i}", Encoding.UTF8.GetBytes(string.Join('\0', lines[i])));
    }

    /// <summary>A legacy llama2.c checkpoint with small random weights (vocab negative: separate classifier).</summary>
    private static byte[] Llama2c(int dim, int hidden, int layers, int heads, int kvHeads, int vocab, int seqLen)
    {
        int v = System.Math.Abs(vocab), kvDim = dim / heads * kvHeads, headSize = dim / heads;
        long floats = (long)v * dim + layers * (2L * dim + (long)dim * dim * 2 + 2L * dim * kvDim + 3L * dim * hidden) + dim
                      + (long)seqLen * headSize + (vocab < 0 ? (long)v * dim : 0);
        var b = new byte[28 + floats * 4];
        int[] header = [dim, hidden, layers, heads, kvHeads, vocab, seqLen];
        for (int i = 0; i < 7; i++) BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(i * 4), header[i]);
        uint state = 12345;
        for (long i = 0; i < floats; i++)
        {
            state = state * 1664525 + 1013904223;
            BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan((int)(28 + i * 4)), ((state >> 8) / 16777216f - 0.5f) * 0.2f);
        }
        return b;
    }
}
