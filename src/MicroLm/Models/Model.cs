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

    /// <summary>The numeric backend the forward pass runs on.</summary>
    public Backend Backend { get; }

    private Model(GgufFile file, Backend backend = Backend.Float)
    {
        Backend = backend;
        File = file;
        Config = ModelConfig.FromGguf(file);
        Tokenizer = Tokenizer.Load(file);
        if (Tokenizer.VocabSize != Config.VocabSize)
            throw new MicroLmException($"tokenizer has {Tokenizer.VocabSize} tokens but the model's vocabulary is {Config.VocabSize}");
        Architecture = Architecture.Create(file, Config, backend);
    }

    public static Model Load(string path) => Load(path, Backend.Float);

    /// <param name="backend">Float (default) or the integer-only fixed-point backend.</param>
    public static Model Load(string path, Backend backend)
    {
        var file = GgufFile.Open(path);
        try { return new Model(file, backend); }
        catch { file.Dispose(); throw; }
    }

    /// <summary>Loads from bytes the caller keeps alive (the browser's case).</summary>
    public static Model Load(ReadOnlyMemory<byte> bytes, Backend backend = Backend.Float) => new(GgufFile.FromMemory(bytes), backend);

    public static Model Load(GgufFile file, Backend backend = Backend.Float) => new(file, backend);

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
