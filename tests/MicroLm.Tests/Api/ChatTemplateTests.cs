using System.Text.Json;
using MicroLm.Chat;

namespace MicroLm.Tests.Api;

/// <summary>Chat templates rendered by our Jinja interpreter equal Jinja2's renderings (made by
/// scripts/chat-template-references with Debian's python3-jinja2, in Hugging Face's settings and
/// committed as ChatTemplates/references.json), character for character, errors included.</summary>
public class ChatTemplateTests
{
    private static readonly string Dir = Path.Combine(AppContext.BaseDirectory, "Api", "ChatTemplates");

    public static TheoryData<string, string, bool> Cases()
    {
        var data = new TheoryData<string, string, bool>();
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "references.json")));
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
            data.Add(c.GetProperty("template").GetString()!, c.GetProperty("conversation").GetString()!, c.GetProperty("add_generation_prompt").GetBoolean());
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Rendering_equals_jinja2(string template, string conversation, bool addGenerationPrompt)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "references.json")));
        var c = doc.RootElement.GetProperty("cases").EnumerateArray().Single(x =>
            x.GetProperty("template").GetString() == template && x.GetProperty("conversation").GetString() == conversation
            && x.GetProperty("add_generation_prompt").GetBoolean() == addGenerationPrompt);
        var messages = c.GetProperty("messages").EnumerateArray()
            .Select(m => new ChatMessage(m.GetProperty("role").GetString()!, m.GetProperty("content").GetString()!)).ToList();
        var t = new ChatTemplate(File.ReadAllText(Path.Combine(Dir, template + ".jinja")));
        string bos = c.GetProperty("bos_token").GetString()!, eos = c.GetProperty("eos_token").GetString()!;
        if (c.TryGetProperty("error", out var error))
        {
            var e = Assert.Throws<MicroLmException>(() => t.Render(messages, addGenerationPrompt, bos, eos));
            Assert.Equal("chat template: " + error.GetString(), e.Message);
        }
        else Assert.Equal(c.GetProperty("output").GetString(), t.Render(messages, addGenerationPrompt, bos, eos));
    }

    [Theory]
    [InlineData("{% if x %}", "{% if %} without {% endif %}")]
    [InlineData("{{ 'a' ", "unclosed tag")]
    [InlineData("{% for x in %}{% endfor %}", "unexpected")]
    [InlineData("{{ x | nosuchfilter }}", "unknown filter 'nosuchfilter'")]
    [InlineData("{% macro m() %}{% endmacro %}", "unsupported statement")]
    public void Bad_templates_fail_with_a_message(string source, string expected)
    {
        var e = Assert.ThrowsAny<MicroLmException>(() => new ChatTemplate(source).Render([new("user", "hi")], true, "<s>", "</s>"));
        Assert.Contains(expected, e.Message);
    }
}
