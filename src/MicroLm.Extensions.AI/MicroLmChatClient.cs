using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using AiChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace MicroLm.Extensions.AI;

/// <summary>An <see cref="IChatClient"/> over a MicroLm <see cref="Model"/>: the conversation goes
/// through the model's chat template, the answer comes back whole or streamed. Options map to
/// MicroLm's: Temperature, TopP, TopK, MaxOutputTokens, Seed, StopSequences (others are ignored).
/// Calls may run concurrently; each uses its own session (kept for reuse afterwards).</summary>
public sealed class MicroLmChatClient : IChatClient
{
    private readonly Model _model;
    private readonly bool _ownsModel;
    private readonly string _modelId;
    private readonly ConcurrentBag<Session> _idle = [];
    private bool _disposed;

    /// <summary>Chat over a loaded model (not disposed with the client unless <paramref name="ownsModel"/>).</summary>
    public MicroLmChatClient(Model model, string? modelId = null, bool ownsModel = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _ownsModel = ownsModel;
        _modelId = modelId ?? model.Name ?? model.ArchitectureName;
    }

    /// <summary>Loads a GGUF file and owns it.</summary>
    public MicroLmChatClient(string path, ModelOptions? options = null) : this(Model.Load(path, options), null, ownsModel: true) { }

    /// <summary>Sampling when a request sets nothing (MicroLm's defaults, as the CLI's).</summary>
    public SamplingOptions DefaultSampling { get; init; } = new();
    /// <summary>Tokens an answer may have when a request does not say (-1: up to the end of the context).</summary>
    public int DefaultMaxOutputTokens { get; init; } = 512;

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<AiChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var text = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        UsageDetails? usage = null;
        await foreach (var update in GetStreamingResponseAsync(messages, options, cancellationToken).ConfigureAwait(false))
        {
            text.Append(update.Text);
            finish = update.FinishReason ?? finish;
            foreach (var c in update.Contents) if (c is UsageContent u) usage = u.Details;
        }
        return new ChatResponse(new AiChatMessage(ChatRole.Assistant, text.ToString()))
        {
            ModelId = _modelId,
            FinishReason = finish,
            Usage = usage,
            CreatedAt = DateTimeOffset.UtcNow,
        };
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<AiChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(messages);
        var conversation = new List<ChatMessage>();
        if (!string.IsNullOrEmpty(options?.Instructions)) conversation.Add(new ChatMessage("system", options.Instructions));
        foreach (var m in messages) conversation.Add(new ChatMessage(m.Role.Value, m.Text));
        string prompt = _model.FormatChat(conversation);
        var generation = ToGeneration(options);
        string responseId = Guid.NewGuid().ToString("N");

        var session = _idle.TryTake(out var s) ? s : _model.CreateSession();
        try
        {
            session.Reset();
            var tokens = session.Tokenize(prompt, generation);
            int output = 0;
            using var e = session.Generate(tokens, generation, cancellationToken).GetEnumerator();
            while (await Task.Run(e.MoveNext, cancellationToken).ConfigureAwait(false))
            {
                output++;
                if (e.Current.Text.Length == 0) continue;
                yield return new ChatResponseUpdate(ChatRole.Assistant, e.Current.Text) { ModelId = _modelId, ResponseId = responseId };
            }
            var usage = new UsageDetails { InputTokenCount = tokens.Count, OutputTokenCount = output, TotalTokenCount = tokens.Count + output };
            yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(usage)])
            {
                ModelId = _modelId,
                ResponseId = responseId,
                FinishReason = session.StopReason is StopReason.EndOfSequence or StopReason.StopSequence ? ChatFinishReason.Stop : ChatFinishReason.Length,
            };
        }
        finally
        {
            if (_disposed) session.Dispose(); else _idle.Add(session);
        }
    }

    private GenerationOptions ToGeneration(ChatOptions? o)
    {
        var d = DefaultSampling;
        var sampling = d with
        {
            Temperature = o?.Temperature ?? d.Temperature,
            TopP = o?.TopP ?? d.TopP,
            TopK = o?.TopK ?? d.TopK,
            Seed = o?.Seed is { } seed ? unchecked((ulong)seed) : d.Seed,
        };
        return new GenerationOptions
        {
            Sampling = sampling,
            MaxTokens = o?.MaxOutputTokens ?? DefaultMaxOutputTokens,
            StopSequences = o?.StopSequences?.ToArray() ?? [],
            ParseSpecialTokens = true,
        };
    }

    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey != null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return new ChatClientMetadata("microlm", null, _modelId);
        if (serviceType.IsInstanceOfType(this)) return this;
        if (serviceType.IsInstanceOfType(_model)) return _model;
        return null;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        while (_idle.TryTake(out var s)) s.Dispose();
        if (_ownsModel) _model.Dispose();
    }
}
