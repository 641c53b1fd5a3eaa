namespace MicroLm.Chat;

/// <summary>A GGUF's "tokenizer.chat_template" ready to render conversations, with the variables
/// Hugging Face passes: messages (role, content), add_generation_prompt, bos_token, eos_token.</summary>
internal sealed class ChatTemplate
{
    /// <summary>ChatML, what llama.cpp falls back to for a model without a template.</summary>
    public const string ChatMl = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    private readonly JinjaTemplate _template;
    public string Source { get; }

    public ChatTemplate(string source)
    {
        Source = source;
        try { _template = JinjaTemplate.Parse(source); }
        catch (JinjaException e) { throw new MicroLmException($"chat template: {e.Message}"); }
    }

    public string Render(IEnumerable<ChatMessage> messages, bool addGenerationPrompt, string bosToken, string eosToken,
        IReadOnlyDictionary<string, object?>? extra = null)
    {
        var list = new List<object?>();
        foreach (var m in messages)
        {
            ArgumentNullException.ThrowIfNull(m);
            list.Add(new Dictionary<string, object?>(StringComparer.Ordinal) { ["role"] = m.Role, ["content"] = m.Content });
        }
        var vars = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = list,
            ["add_generation_prompt"] = addGenerationPrompt,
            ["bos_token"] = bosToken,
            ["eos_token"] = eosToken,
        };
        if (extra != null) foreach (var (k, v) in extra) vars[k] = v;
        try { return _template.Render(vars); }
        catch (JinjaException e) { throw new MicroLmException($"chat template: {e.Message}"); }
    }
}
