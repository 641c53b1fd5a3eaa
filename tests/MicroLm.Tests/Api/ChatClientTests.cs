using MicroLm.Extensions.AI;
using MicroLm.Synthetic;
using MicroLm.Tokenizers;
using Microsoft.Extensions.AI;
using AiChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace MicroLm.Tests.Api;

/// <summary>IChatClient over stories260K (no template: ChatML as plain text) and over a synthetic model
/// with ChatML special tokens and a chat_template key: streaming equals non-streaming, options reach
/// the sampler (a seed gives Session.Generate's tokens), stop sequences and token limits hold.</summary>
public class ChatClientTests
{
    // The file says 128 positions; the conversation as ChatML text is longer.
    private static Model Stories() => Model.Load(SharedData.Path("models", "gguf", "stories260K-F32.gguf"), new ModelOptions { ContextLength = 512 });

    private static Model SyntheticChatModel()
    {
        var v = SyntheticVocabulary.Generated(320);
        var vocab = new SyntheticVocabulary([.. v.Pieces, "<|im_start|>", "<|im_end|>"], [.. v.Scores, 0, 0],
            [.. v.Types, SentencePieceTokenizer.TypeControl, SentencePieceTokenizer.TypeControl]);
        var w = SyntheticLlama.Build(new SyntheticLlamaOptions { Vocabulary = vocab, ContextLength = 256 });
        w.Add("tokenizer.chat_template", "{{ bos_token }}{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content | trim + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}");
        return Model.Load(w.ToArray());
    }

    private static readonly List<AiChatMessage> Conversation =
    [
        new(ChatRole.System, "You tell stories."),
        new(ChatRole.User, "Once upon a time"),
        new(ChatRole.Assistant, "there was a dog."),
        new(ChatRole.User, "What next?"),
    ];

    [SharedTheory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Streaming_and_whole_answers_agree_and_follow_the_seed(bool synthetic)
    {
        using var model = synthetic ? SyntheticChatModel() : Stories();
        using IChatClient client = new MicroLmChatClient(model);
        var options = new ChatOptions { Temperature = 0.9f, TopP = 0.9f, TopK = 20, Seed = 11, MaxOutputTokens = 24 };
        var whole = await client.GetResponseAsync(Conversation, options);
        var parts = new List<string>();
        ChatFinishReason? finish = null;
        await foreach (var u in client.GetStreamingResponseAsync(Conversation, options)) { parts.Add(u.Text); finish = u.FinishReason ?? finish; }
        Assert.Equal(whole.Text, string.Concat(parts));
        Assert.Equal(whole.FinishReason, finish);

        // The same tokens as the public API gives for the template's prompt and the mapped options.
        string prompt = model.FormatChat(Conversation.Select(m => new ChatMessage(m.Role.Value, m.Text)));
        using var s = model.CreateSession();
        var go = new GenerationOptions
        {
            Sampling = new SamplingOptions { Temperature = 0.9f, TopP = 0.9f, TopK = 20, Seed = 11 },
            MaxTokens = 24, ParseSpecialTokens = true,
        };
        var tokens = s.Tokenize(prompt, go);
        Assert.Equal(s.GenerateText(prompt, go), whole.Text);
        Assert.Equal(tokens.Count, whole.Usage!.InputTokenCount);
        Assert.InRange(whole.Usage.OutputTokenCount!.Value, 1, 24);
        if (synthetic)
        {
            // Special tokens were parsed: each <|im_start|> is one token, not its characters.
            Assert.Equal(4 + 1, tokens.Count(t => t == 320));
            Assert.Contains("<|im_start|>assistant\n", prompt);
        }
        // A different seed gives a different answer (sampling really is seeded).
        var reseeded = options.Clone();
        reseeded.Seed = 12;
        var other = await client.GetResponseAsync(Conversation, reseeded);
        Assert.NotEqual(whole.Text, other.Text);
    }

    [SharedFact]
    public async Task Stop_sequences_and_token_limits_are_mapped()
    {
        using var model = Stories();
        using IChatClient client = new MicroLmChatClient(model);
        var greedy = new ChatOptions { Temperature = 0, MaxOutputTokens = 40 };
        var full = await client.GetResponseAsync(Conversation, greedy);
        Assert.Equal(ChatFinishReason.Length, full.FinishReason);
        Assert.Equal(40, full.Usage!.OutputTokenCount);
        string stop = full.Text.Substring(full.Text.Length / 2, 4);
        var withStop = greedy.Clone();
        withStop.StopSequences = [stop];
        var cut = await client.GetResponseAsync(Conversation, withStop);
        Assert.Equal(full.Text[..full.Text.IndexOf(stop, StringComparison.Ordinal)], cut.Text);
        Assert.Equal(ChatFinishReason.Stop, cut.FinishReason);
        var meta = client.GetService<ChatClientMetadata>();
        Assert.Equal("microlm", meta!.ProviderName);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.GetResponseAsync(Conversation, greedy, cts.Token));
    }
}
