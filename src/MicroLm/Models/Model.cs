using MicroLm.Generation;
using MicroLm.Gguf;
using MicroLm.Tokenizers;

namespace MicroLm.Models;

/// <summary>A loaded model: weights read in place from the GGUF bytes, its configuration and its
/// tokenizer. Immutable once loaded and safe to share across threads; sessions hold all state.</summary>
public sealed class Model : IDisposable
{
    public GgufFile File { get; }
    public ModelConfig Config { get; }
    public Tokenizer Tokenizer { get; }
    public Architecture Architecture { get; }

    private Model(GgufFile file)
    {
        File = file;
        Config = ModelConfig.FromGguf(file);
        Tokenizer = Tokenizer.Load(file);
        if (Tokenizer.VocabSize != Config.VocabSize)
            throw new MicroLmException($"tokenizer has {Tokenizer.VocabSize} tokens but the model's vocabulary is {Config.VocabSize}");
        Architecture = Architecture.Create(file, Config);
    }

    public static Model Load(string path)
    {
        var file = GgufFile.Open(path);
        try { return new Model(file); }
        catch { file.Dispose(); throw; }
    }

    /// <summary>Loads from bytes the caller keeps alive (the browser's case).</summary>
    public static Model Load(ReadOnlyMemory<byte> bytes) => new(GgufFile.FromMemory(bytes));

    public static Model Load(GgufFile file) => new(file);

    /// <param name="contextLength">Positions the KV cache holds (0: the model's context length).</param>
    /// <param name="threads">Threads for matmuls and attention; results are identical for any count.</param>
    /// <param name="maxBatch">Most tokens evaluated in one forward pass (prompt processing).</param>
    public Session CreateSession(int contextLength = 0, int threads = 1, int maxBatch = 32)
    {
        if (contextLength < 0 || contextLength > 1 << 20) throw new MicroLmException($"context length {contextLength} is out of range");
        return new Session(this, contextLength, threads, maxBatch);
    }

    public void Dispose() => File.Dispose();
}
