namespace MicroLm.Cli;

/// <summary>chat and serve: declared here with every other command (parser, --help, contract test),
/// while their bodies (console input; ASP.NET Core) live in Chat/ and Server/, which only the native
/// host compiles: Program.cs plugs them in, so the browser build, which compiles this folder's files,
/// needs neither.</summary>
public static class HostCommands
{
    public static Func<Options, TextWriter, TextWriter, int>? ChatBody { get; set; }
    public static Func<Options, TextWriter, TextWriter, int>? ServeBody { get; set; }

    private static int Unavailable(string name) => throw new UsageException($"'{name}' is only in the native microlm");

    public static readonly CommandSpec ChatSpec = new()
    {
        Name = "chat",
        Synopsis = "-m FILE [--system TEXT] [-n N] [sampling options] [-c CTX] [-t THREADS]",
        Summary = "An interactive chat through the model's chat template (ChatML if it has none); an empty line or end of input ends it.",
        Flags = [.. CommonFlags.Model, Flag.Text("--system|-sys", "TEXT", "the system prompt"),
            Flag.Int("-n|--n-predict", "N", "most tokens per answer; -1: until the context is full (default -1)", min: -1),
            .. CommonFlags.Sampling, .. CommonFlags.Session],
        Run = (o, stdout, stderr) => ChatBody != null ? ChatBody(o, stdout, stderr) : Unavailable("chat"),
    };

    public static readonly CommandSpec ServeSpec = new()
    {
        Name = "serve",
        Synopsis = "-m FILE [--host H] [--port P] [--parallel N] [--queue N] [--api-key KEY] [-c CTX] [-n N] [sampling options]",
        Summary = "An OpenAI-compatible HTTP server: /v1/completions, /v1/chat/completions (SSE streaming), /v1/models, /health (docs/api.md).",
        Flags = [.. CommonFlags.Model,
            Flag.Text("--host", "H", "address to listen on (default 127.0.0.1)"),
            Flag.Int("--port", "P", "port; 0 picks a free one (default 8080)", min: 0, max: 65535),
            Flag.Int("--parallel|-np", "N", "sessions, i.e. requests served at once (default 2)", min: 1, max: 256),
            Flag.Int("--queue", "N", "requests that may wait for a session; more get 503 (default 16)", min: 0, max: 100000),
            Flag.Text("--api-key", "KEY", "require 'Authorization: Bearer KEY' on /v1 (or set MICROLM_API_KEY)"),
            Flag.Text("--alias|-a", "NAME", "the model id clients see (default: the file name)"),
            Flag.Int("--max-body", "BYTES", "largest request body; larger gets 413 (default 1048576)", min: 1024, max: 1 << 30),
            Flag.Int("-n|--n-predict", "N", "most tokens a request may ask for (default 512)", min: 1),
            .. CommonFlags.Sampling, .. CommonFlags.Session],
        Run = (o, stdout, stderr) => ServeBody != null ? ServeBody(o, stdout, stderr) : Unavailable("serve"),
    };
}
