using MicroLm.Generation;
using MicroLm.Gguf;
using MicroLm.Models;
using MicroLm.Tokenizers;

namespace MicroLm;

/// <summary>A loaded model: weights read in place from the GGUF bytes, its configuration and its
/// tokenizer. Immutable once loaded and safe to share across threads; sessions hold all state.</summary>
public sealed class Model : IDisposable
{
    internal GgufFile File { get; }
    internal ModelConfig Config { get; }
    public Tokenizer Tokenizer { get; }
    internal Architecture Architecture { get; }
    /// <summary>The options the model was loaded with (session defaults).</summary>
    public ModelOptions Options { get; }

    /// <summary>The numeric backend the forward pass runs on.</summary>
    internal Backend Backend { get; }

    private Model(GgufFile file, ModelOptions? options, Backend backend = Backend.Float)
    {
        Backend = backend;
        File = file;
        Options = options ?? new ModelOptions();
        Options.Validate();
        Config = ModelConfig.FromGguf(file);
        Tokenizer = Tokenizer.Load(file);
        if (Tokenizer.VocabSize != Config.VocabSize)
            throw new MicroLmException($"tokenizer has {Tokenizer.VocabSize} tokens but the model's vocabulary is {Config.VocabSize}");
        Architecture = Architecture.Create(file, Config, backend);
    }

    /// <summary>Loads a GGUF file, memory-mapped (weights are read in place, not copied).</summary>
    public static Model Load(string path, ModelOptions? options = null)
    {
        var file = GgufFile.Open(path);
        try { return new Model(file, options); }
        catch { file.Dispose(); throw; }
    }

    /// <summary>Loads from bytes the caller keeps alive and unchanged (the browser's case).</summary>
    public static Model Load(ReadOnlyMemory<byte> bytes, ModelOptions? options = null) => new(GgufFile.FromMemory(bytes), options);

    /// <summary>Reads the whole stream into one buffer, then loads from it.</summary>
    public static Model Load(Stream stream, ModelOptions? options = null) => Load(ReadIntoMemory(stream), options);

    internal static Model Load(Stream stream, Backend backend) => Load(ReadIntoMemory(stream), backend);

    /// <summary>The whole stream in one pinned buffer that starts on a 64-byte line, as a mapping starts on a page: the
    /// tensors then sit where they sit in a mapped file (a GGUF file aligns them to 32 bytes), not 16 bytes past that
    /// (an array's data follows its header), which would split most vector loads of F32 rows across two cache lines
    /// (docs/performance.md, "Mapped or in memory").</summary>
    private static ReadOnlyMemory<byte> ReadIntoMemory(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanSeek)
        {
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            copy.Position = 0;
            return ReadIntoMemory(copy);
        }
        long length = stream.Length - stream.Position;
        if (length > MaxBytesInMemory) throw new MicroLmException($"the stream holds {length:N0} bytes, more than one buffer can (load it from a path instead)");
        var buffer = GC.AllocateUninitializedArray<byte>((int)length + IO.CacheLines.Bytes - 1, pinned: true);
        int start = IO.CacheLines.Offset(buffer);
        stream.ReadExactly(buffer, start, (int)length);
        return buffer.AsMemory(start, (int)length);
    }

    /// <summary>The largest file <see cref="Load(Stream, ModelOptions?)"/> reads into memory: one array, with room to start on a line.</summary>
    internal static long MaxBytesInMemory => Array.MaxLength - (IO.CacheLines.Bytes - 1);

    /// <param name="backend">Float (default) or the integer-only fixed-point backend.</param>
    internal static Model Load(string path, Backend backend)
    {
        var file = GgufFile.Open(path);
        try { return new Model(file, null, backend); }
        catch { file.Dispose(); throw; }
    }

    internal static Model Load(ReadOnlyMemory<byte> bytes, Backend backend) => new(GgufFile.FromMemory(bytes), null, backend);

    internal static Model Load(GgufFile file, Backend backend) => new(file, null, backend);

    internal static Model Load(GgufFile file, ModelOptions? options = null) => new(file, options);

    /// <summary>A new session (its own KV cache and threads). Arguments left out come from <see cref="Options"/>.</summary>
    /// <param name="contextLength">Positions the KV cache holds (0: the model's context length).</param>
    /// <param name="threads">Threads for matmuls and attention; results are identical for any count.</param>
    /// <param name="maxBatch">Most tokens evaluated in one forward pass (prompt processing).</param>
    public Session CreateSession(int? contextLength = null, int? threads = null, int? maxBatch = null)
    {
        int ctx = contextLength ?? Options.ContextLength;
        if (ctx < 0 || ctx > 1 << 20) throw new MicroLmException($"context length {ctx} is out of range");
        int t = threads ?? Options.Threads;
        if (t < 1 || t > 1024) throw new MicroLmException($"thread count {t} is out of range");
        return new Session(this, ctx, t, maxBatch ?? Options.BatchSize);
    }

    /// <summary>"general.architecture": llama, gptneox, …</summary>
    public string ArchitectureName => Config.Architecture;
    /// <summary>"general.name", if the file has one.</summary>
    public string? Name => File.GetString("general.name");
    /// <summary>The context length the model was trained for.</summary>
    public int TrainedContextLength => Config.ContextLength;
    public int VocabSize => Config.VocabSize;
    public int LayerCount => Config.Layers;
    public int EmbeddingLength => Config.Dim;
    public int TensorCount => File.Tensors.Count;
    public long ParameterCount => File.ParameterCount;
    /// <summary>"tokenizer.chat_template" (a Jinja template), if the file has one.</summary>
    public string? ChatTemplate => File.GetString("tokenizer.chat_template");

    /// <summary>A metadata value as text (strings as they are, numbers and booleans in invariant
    /// form); null if the key is absent or holds an array.</summary>
    public string? GetMetadata(string key)
    {
        if (!File.TryGet(key, out var v)) return null;
        return v.Type switch
        {
            GgufValueType.String => v.AsString(),
            GgufValueType.Array => null,
            _ => v.ToDisplayString(),
        };
    }

    private Chat.ChatTemplate? _chatTemplate;

    /// <summary>The conversation as the model's chat template ("tokenizer.chat_template", or ChatML
    /// when the file has none) writes it, ending with the assistant's turn opened when
    /// <paramref name="addGenerationPrompt"/>. Generate from it with
    /// <see cref="GenerationOptions.ParseSpecialTokens"/> on. A template error (or the template's own
    /// raise_exception, e.g. for roles out of order) is a <see cref="MicroLmException"/>.</summary>
    public string FormatChat(IEnumerable<ChatMessage> messages, bool addGenerationPrompt = true)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var template = _chatTemplate ??= new Chat.ChatTemplate(ChatTemplate ?? Chat.ChatTemplate.ChatMl);
        var t = Tokenizer;
        return template.Render(messages, addGenerationPrompt, t.BosId >= 0 ? t.TokenText(t.BosId) : "", t.EosId >= 0 ? t.TokenText(t.EosId) : "");
    }

    public void Dispose() => File.Dispose();
}

/// <summary>How a model is loaded and the defaults of its sessions.</summary>
public sealed record ModelOptions
{
    /// <summary>Positions a session holds (0: the model's own context length).</summary>
    public int ContextLength { get; init; }
    /// <summary>Threads per session; results are identical for any count.</summary>
    public int Threads { get; init; } = 1;
    /// <summary>Most prompt tokens evaluated in one forward pass; results are identical for any size.</summary>
    public int BatchSize { get; init; } = 32;

    internal void Validate()
    {
        if (ContextLength < 0 || ContextLength > 1 << 20) throw new MicroLmException($"context length {ContextLength} is out of range");
        if (Threads < 1 || Threads > 1024) throw new MicroLmException($"thread count {Threads} is out of range");
        if (BatchSize < 1) throw new MicroLmException($"batch size {BatchSize} must be at least 1");
    }
}
