using System.Globalization;

namespace MicroLm.Cli;

/// <summary>`microlm chat -m FILE [--system S]`: an interactive conversation through the model's chat
/// template. Each turn renders the whole conversation and evaluates it afresh (a recurrent state cannot
/// be rewound to where the re-tokenized reply first differs from the sampled one).</summary>
public static class ChatCommand
{
    public static int Run(Options o, TextReader stdin, TextWriter stdout, TextWriter stderr)
    {
        using var model = Commands.LoadModel(o);
        int ctx = o.Int(0, "-c", "--ctx-size");
        using var session = model.CreateSession(ctx, o.Int(1, "-t", "--threads"), System.Math.Max(1, o.Int(32, "--batch", "-b")));
        int maxTokens = o.Int(-1, "-n", "--n-predict");
        var options = new GenerationOptions { Sampling = Commands.Sampling(o), MaxTokens = maxTokens, ParseSpecialTokens = true, AddBos = null };
        var conversation = new List<ChatMessage>();
        if (o.Get("--system", "-sys") is { } system) conversation.Add(new ChatMessage("system", system));
        stderr.WriteLine(model.ChatTemplate == null
            ? "microlm: the model has no chat template; using ChatML"
            : "microlm: chat with the model's template; an empty line or end of input ends the chat");
        while (true)
        {
            stdout.Write("> ");
            stdout.Flush();
            string? line = stdin.ReadLine();
            if (line == null || line.Length == 0 || line == "/exit") break;
            conversation.Add(new ChatMessage("user", line));
            string prompt = model.FormatChat(conversation);
            var probe = new GenerationOptions { ParseSpecialTokens = true };
            session.Reset();
            var tokens = session.Tokenize(prompt, probe);
            if (tokens.Count + 1 > session.ContextLength)
            {
                stderr.WriteLine($"microlm: the conversation ({tokens.Count} tokens) no longer fits the context of {session.ContextLength} (use -c)");
                return 1;
            }
            var reply = new System.Text.StringBuilder();
            foreach (var t in session.Generate(tokens, options))
            {
                stdout.Write(t.Text);
                stdout.Flush();
                reply.Append(t.Text);
            }
            stdout.WriteLine();
            if (session.StopReason == StopReason.ContextFull)
                stderr.WriteLine(string.Create(CultureInfo.InvariantCulture, $"microlm: the context ({session.ContextLength} positions) is full"));
            conversation.Add(new ChatMessage("assistant", reply.ToString()));
        }
        return 0;
    }
}
