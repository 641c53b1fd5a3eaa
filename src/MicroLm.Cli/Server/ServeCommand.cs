using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace MicroLm.Cli;

/// <summary>`microlm serve`: an OpenAI-compatible HTTP server over one model (llama-server's flags).
/// A fixed pool of sessions serves requests; up to --queue more wait; beyond that a request gets 503
/// at once. Replicas hold no state between requests, so scale-out is more processes behind any HTTP
/// load balancer.</summary>
public static class ServeCommand
{
    public static int Run(Options o, TextWriter stdout, TextWriter stderr)
    {
        var model = Commands.LoadModel(o);
        var settings = new ServerSettings
        {
            Parallel = o.Int(2, "--parallel", "-np"),
            Queue = o.Int(16, "--queue"),
            ContextLength = o.Int(0, "-c", "--ctx-size"),
            Threads = o.Int(1, "-t", "--threads"),
            MaxTokens = o.Int(512, "-n", "--n-predict"),
            MaxBodyBytes = o.Int(1 << 20, "--max-body"),
            ApiKey = o.Get("--api-key") ?? Environment.GetEnvironmentVariable("MICROLM_API_KEY"),
            ModelId = o.Get("--alias", "-a") ?? Path.GetFileName(o.Get("-m", "--model") ?? "model"),
            Defaults = Commands.Sampling(o),
        };
        if (settings.Parallel < 1 || settings.Parallel > 256) throw new UsageException($"--parallel must be 1 to 256, got {settings.Parallel}");
        if (settings.Queue < 0) throw new UsageException($"--queue must be 0 or more, got {settings.Queue}");
        if (settings.MaxTokens < 1) throw new UsageException($"-n must be at least 1, got {settings.MaxTokens}");
        string host = o.Get("--host") ?? "127.0.0.1";
        int port = o.Int(8080, "--port");
        if (port is < 0 or > 65535) throw new UsageException($"--port must be 0 to 65535, got {port}");
        if (!IPAddress.TryParse(host, out var address))
            address = host == "localhost" ? IPAddress.Loopback : throw new UsageException($"--host must be an IP address, got '{host}'");

        using var server = new OpenAiServer(model, settings);
        var app = server.Build(address, port);
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            var urls = app.Urls.Count > 0 ? string.Join(", ", app.Urls) : $"http://{host}:{port}";
            stderr.WriteLine($"microlm: serving {settings.ModelId} on {urls} ({settings.Parallel} sessions, queue {settings.Queue}); Ctrl+C stops");
            stderr.Flush();
        });
        app.Run();
        stderr.WriteLine("microlm: stopped");
        return 0;
    }
}

public sealed record ServerSettings
{
    public int Parallel { get; init; } = 2;
    public int Queue { get; init; } = 16;
    public int ContextLength { get; init; }
    public int Threads { get; init; } = 1;
    public int MaxTokens { get; init; } = 512;
    public int MaxBodyBytes { get; init; } = 1 << 20;
    public string? ApiKey { get; init; }
    public string ModelId { get; init; } = "model";
    public SamplingOptions Defaults { get; init; } = new();
}

/// <summary>The server's endpoints and its session pool. Owns the model.</summary>
public sealed class OpenAiServer : IDisposable
{
    private readonly Model _model;
    private readonly ServerSettings _settings;
    private readonly SessionPool _pool;
    private readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    private long _requests;

    public OpenAiServer(Model model, ServerSettings settings)
    {
        _model = model;
        _settings = settings;
        _pool = new SessionPool(model, settings);
    }

    public WebApplication Build(IPAddress address, int port)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(c => c.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(30));
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(address, port);
            k.Limits.MaxRequestBodySize = _settings.MaxBodyBytes;
            k.AddServerHeader = false;
        });
        var app = builder.Build();
        app.Use(async (ctx, next) =>
        {
            if (_settings.ApiKey != null && ctx.Request.Path.StartsWithSegments("/v1"))
            {
                string? auth = ctx.Request.Headers.Authorization;
                if (auth != "Bearer " + _settings.ApiKey)
                {
                    await Error(ctx, 401, "invalid or missing API key (Authorization: Bearer KEY)", "authentication_error");
                    return;
                }
            }
            await next(ctx);
        });
        app.MapGet("/health", (HttpContext ctx) => WriteJson(ctx, 200, w =>
        {
            w.WriteString("status", "ok");
            w.WriteNumber("sessions", _settings.Parallel);
            w.WriteNumber("busy", _pool.Busy);
            w.WriteNumber("waiting", _pool.Waiting);
        }));
        app.MapGet("/v1/models", (HttpContext ctx) => WriteJson(ctx, 200, w =>
        {
            w.WriteString("object", "list");
            w.WriteStartArray("data");
            w.WriteStartObject();
            w.WriteString("id", _settings.ModelId);
            w.WriteString("object", "model");
            w.WriteNumber("created", _created);
            w.WriteString("owned_by", "microlm");
            w.WriteEndObject();
            w.WriteEndArray();
        }));
        app.MapPost("/v1/completions", (HttpContext ctx) => Handle(ctx, chat: false));
        app.MapPost("/v1/chat/completions", (HttpContext ctx) => Handle(ctx, chat: true));
        return app;
    }

    private sealed class BadRequest(string message) : Exception(message);

    private async Task Handle(HttpContext ctx, bool chat)
    {
        JsonDocument doc;
        try
        {
            using var body = new MemoryStream();
            await ctx.Request.Body.CopyToAsync(body, ctx.RequestAborted);
            doc = JsonDocument.Parse(body.ToArray());
        }
        catch (BadHttpRequestException e) when (e.StatusCode == 413)
        {
            await Error(ctx, 413, $"the request body is larger than {_settings.MaxBodyBytes} bytes", "invalid_request_error");
            return;
        }
        catch (JsonException e)
        {
            await Error(ctx, 400, $"the body is not valid JSON: {e.Message}", "invalid_request_error");
            return;
        }
        using (doc)
        {
            Request request;
            try { request = ParseRequest(doc.RootElement, chat); }
            catch (Exception e) when (e is BadRequest or MicroLmException or InvalidOperationException or FormatException)
            {
                await Error(ctx, 400, e.Message, "invalid_request_error");
                return;
            }

            using var lease = _pool.TryAcquire();
            if (lease == null)
            {
                ctx.Response.Headers.RetryAfter = "1";
                await Error(ctx, 503, "the server is busy: all sessions are in use and the queue is full; retry later", "server_busy");
                return;
            }
            try
            {
                var session = await lease.WaitAsync(ctx.RequestAborted);
                await Generate(ctx, session, request, chat);
            }
            catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested) { }
            catch (MicroLmException e) when (!ctx.Response.HasStarted)
            {
                await Error(ctx, 400, e.Message, "invalid_request_error");
            }
        }
    }

    private sealed record Request(string Prompt, GenerationOptions Options, bool Stream);

    private Request ParseRequest(JsonElement root, bool chat)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new BadRequest("the body must be a JSON object");
        string prompt;
        if (chat)
        {
            if (!root.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array || messages.GetArrayLength() == 0)
                throw new BadRequest("'messages' must be a non-empty array");
            var list = new List<ChatMessage>();
            foreach (var m in messages.EnumerateArray())
            {
                if (m.ValueKind != JsonValueKind.Object || !m.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String)
                    throw new BadRequest("each message needs a string 'role'");
                list.Add(new ChatMessage(role.GetString()!, Content(m)));
            }
            prompt = _model.FormatChat(list);
        }
        else
        {
            if (!root.TryGetProperty("prompt", out var p)) throw new BadRequest("'prompt' is required");
            prompt = p.ValueKind switch
            {
                JsonValueKind.String => p.GetString()!,
                JsonValueKind.Array when p.GetArrayLength() == 1 && p[0].ValueKind == JsonValueKind.String => p[0].GetString()!,
                _ => throw new BadRequest("'prompt' must be a string (or an array of one string)"),
            };
        }
        var d = _settings.Defaults;
        int maxTokens = Int(root, chat ? "max_completion_tokens" : "max_tokens") ?? Int(root, "max_tokens") ?? _settings.MaxTokens;
        if (maxTokens < 1) throw new BadRequest("'max_tokens' must be at least 1");
        if (maxTokens > _settings.MaxTokens) throw new BadRequest($"'max_tokens' is {maxTokens}; this server allows at most {_settings.MaxTokens}");
        if (Int(root, "n") is { } n && n != 1) throw new BadRequest("only n = 1 is supported");
        var sampling = d with
        {
            Temperature = Float(root, "temperature") ?? d.Temperature,
            TopP = Float(root, "top_p") ?? d.TopP,
            TopK = Int(root, "top_k") ?? d.TopK,
            MinP = Float(root, "min_p") ?? d.MinP,
            RepeatPenalty = Float(root, "repeat_penalty") ?? d.RepeatPenalty,
            Seed = root.TryGetProperty("seed", out var seed) && seed.ValueKind == JsonValueKind.Number
                ? (seed.TryGetUInt64(out ulong us) ? us : seed.TryGetInt64(out long ls) ? unchecked((ulong)ls) : throw new BadRequest("'seed' must be an integer"))
                : d.Seed,
        };
        if (sampling.Temperature is < 0 or > 100) throw new BadRequest("'temperature' must be between 0 and 100");
        if (sampling.TopP is <= 0 or > 1) throw new BadRequest("'top_p' must be in (0, 1]");
        var stops = new List<string>();
        if (root.TryGetProperty("stop", out var stop))
        {
            if (stop.ValueKind == JsonValueKind.String) stops.Add(stop.GetString()!);
            else if (stop.ValueKind == JsonValueKind.Array)
                foreach (var s in stop.EnumerateArray())
                    stops.Add(s.ValueKind == JsonValueKind.String ? s.GetString()! : throw new BadRequest("'stop' must hold strings"));
            else if (stop.ValueKind != JsonValueKind.Null) throw new BadRequest("'stop' must be a string or an array of strings");
            if (stops.Count > 16) throw new BadRequest("at most 16 stop sequences");
        }
        bool stream = root.TryGetProperty("stream", out var st) && st.ValueKind == JsonValueKind.True;
        return new Request(prompt, new GenerationOptions
        {
            MaxTokens = maxTokens,
            Sampling = sampling,
            StopSequences = stops,
            ParseSpecialTokens = chat,
        }, stream);
    }

    private static string Content(JsonElement message)
    {
        if (!message.TryGetProperty("content", out var c) || c.ValueKind == JsonValueKind.Null) return "";
        if (c.ValueKind == JsonValueKind.String) return c.GetString()!;
        if (c.ValueKind == JsonValueKind.Array)
        {
            var sb = new StringBuilder();
            foreach (var part in c.EnumerateArray())
            {
                if (part.ValueKind == JsonValueKind.Object && part.TryGetProperty("type", out var t) && t.GetString() == "text"
                    && part.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String)
                    sb.Append(text.GetString());
                else throw new BadRequest("only text content parts are supported");
            }
            return sb.ToString();
        }
        throw new BadRequest("'content' must be a string or an array of text parts");
    }

    private static int? Int(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw new BadRequest($"'{name}' must be an integer");
    }

    private static float? Float(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && double.IsFinite(d) ? (float)d : throw new BadRequest($"'{name}' must be a number");
    }

    private async Task Generate(HttpContext ctx, Session session, Request r, bool chat)
    {
        session.Reset();
        var prompt = session.Tokenize(r.Prompt, r.Options);
        if (prompt.Count >= session.ContextLength)
            throw new MicroLmException($"the prompt is {prompt.Count} tokens; the context holds {session.ContextLength}");
        string id = (chat ? "chatcmpl-" : "cmpl-") + Interlocked.Increment(ref _requests).ToString(CultureInfo.InvariantCulture);
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        string kind = chat ? "chat.completion" : "text_completion";
        var ct = ctx.RequestAborted;
        int completion = 0;
        if (!r.Stream)
        {
            var text = new StringBuilder();
            await foreach (var t in GenerateOnPool(session, prompt, r.Options, ct)) { text.Append(t.Text); completion++; }
            await WriteJson(ctx, 200, w =>
            {
                Header(w, id, kind, created);
                w.WriteStartArray("choices");
                w.WriteStartObject();
                w.WriteNumber("index", 0);
                if (chat)
                {
                    w.WriteStartObject("message");
                    w.WriteString("role", "assistant");
                    w.WriteString("content", text.ToString());
                    w.WriteEndObject();
                }
                else
                {
                    w.WriteString("text", text.ToString());
                    w.WriteNull("logprobs");
                }
                w.WriteString("finish_reason", Finish(session.StopReason));
                w.WriteEndObject();
                w.WriteEndArray();
                Usage(w, prompt.Count, completion);
            });
            return;
        }

        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = "text/event-stream";
        ctx.Response.Headers.CacheControl = "no-cache";
        string chunkKind = chat ? "chat.completion.chunk" : "text_completion";
        if (chat) await Event(ctx, w => Chunk(w, id, chunkKind, created, chat, role: "assistant", text: null, finish: null), ct);
        await foreach (var t in GenerateOnPool(session, prompt, r.Options, ct))
        {
            completion++;
            if (t.Text.Length == 0) continue;
            await Event(ctx, w => Chunk(w, id, chunkKind, created, chat, role: null, text: t.Text, finish: null), ct);
        }
        await Event(ctx, w =>
        {
            Chunk(w, id, chunkKind, created, chat, role: null, text: chat ? null : "", finish: Finish(session.StopReason), close: false);
            Usage(w, prompt.Count, completion);
            w.WriteEndObject();
        }, ct);
        await ctx.Response.WriteAsync("data: [DONE]\n\n", ct);
        await ctx.Response.Body.FlushAsync(ct);
    }

    /// <summary>The session's tokens, computed on the thread pool (the request thread never blocks on the model).</summary>
    private static IAsyncEnumerable<GeneratedToken> GenerateOnPool(Session session, List<int> prompt, GenerationOptions o, CancellationToken ct) =>
        Stream(session.Generate(prompt, o, ct), ct);

    private static async IAsyncEnumerable<GeneratedToken> Stream(IEnumerable<GeneratedToken> tokens, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        using var e = tokens.GetEnumerator();
        while (await Task.Run(e.MoveNext, ct).ConfigureAwait(false)) yield return e.Current;
    }

    private static readonly JsonWriterOptions JsonOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static string Finish(StopReason reason) => reason is StopReason.EndOfSequence or StopReason.StopSequence ? "stop" : "length";

    private void Header(Utf8JsonWriter w, string id, string kind, long created)
    {
        w.WriteString("id", id);
        w.WriteString("object", kind);
        w.WriteNumber("created", created);
        w.WriteString("model", _settings.ModelId);
    }

    private void Chunk(Utf8JsonWriter w, string id, string kind, long created, bool chat, string? role, string? text, string? finish, bool close = true)
    {
        Header(w, id, kind, created);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        if (chat)
        {
            w.WriteStartObject("delta");
            if (role != null) w.WriteString("role", role);
            if (text != null) w.WriteString("content", text);
            w.WriteEndObject();
        }
        else
        {
            w.WriteString("text", text ?? "");
            w.WriteNull("logprobs");
        }
        if (finish != null) w.WriteString("finish_reason", finish); else w.WriteNull("finish_reason");
        w.WriteEndObject();
        w.WriteEndArray();
        if (close) w.WriteEndObject();
    }

    private static void Usage(Utf8JsonWriter w, int prompt, int completion)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", prompt);
        w.WriteNumber("completion_tokens", completion);
        w.WriteNumber("total_tokens", prompt + completion);
        w.WriteEndObject();
    }

    private static async Task Event(HttpContext ctx, Action<Utf8JsonWriter> body, CancellationToken ct)
    {
        var buffer = new MemoryStream();
        buffer.Write("data: "u8);
        using (var w = new Utf8JsonWriter(buffer, JsonOptions))
        {
            w.WriteStartObject();
            body(w);
            // Chunk closes the object itself unless asked not to; the writer tolerates neither extra nor missing ends.
        }
        buffer.Write("\n\n"u8);
        await ctx.Response.Body.WriteAsync(buffer.GetBuffer().AsMemory(0, (int)buffer.Length), ct);
        await ctx.Response.Body.FlushAsync(ct);
    }

    private static async Task WriteJson(HttpContext ctx, int status, Action<Utf8JsonWriter> body)
    {
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, JsonOptions))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        await ctx.Response.Body.WriteAsync(buffer.GetBuffer().AsMemory(0, (int)buffer.Length));
    }

    private static Task Error(HttpContext ctx, int status, string message, string type) => WriteJson(ctx, status, w =>
    {
        w.WriteStartObject("error");
        w.WriteString("message", message);
        w.WriteString("type", type);
        w.WriteNumber("code", status);
        w.WriteEndObject();
    });

    public void Dispose()
    {
        _pool.Dispose();
        _model.Dispose();
    }
}

/// <summary>A fixed set of sessions (memory bounded by --parallel) and a bounded queue of requests
/// waiting for one: a request beyond the queue is refused at once instead of waiting without bound.</summary>
public sealed class SessionPool : IDisposable
{
    private readonly Session[] _sessions;
    private readonly Stack<Session> _free;
    private readonly SemaphoreSlim _available;
    private readonly int _capacity;
    private int _admitted;

    public SessionPool(Model model, ServerSettings s)
    {
        _sessions = new Session[s.Parallel];
        for (int i = 0; i < s.Parallel; i++) _sessions[i] = model.CreateSession(s.ContextLength, s.Threads);
        _free = new Stack<Session>(_sessions);
        _available = new SemaphoreSlim(s.Parallel, s.Parallel);
        _capacity = s.Parallel + s.Queue;
    }

    public int Busy => _sessions.Length - _available.CurrentCount;
    public int Waiting => System.Math.Max(0, Volatile.Read(ref _admitted) - _sessions.Length);

    /// <summary>A place among the running or waiting requests, or null when the queue is full.</summary>
    public Lease? TryAcquire()
    {
        if (Interlocked.Increment(ref _admitted) > _capacity)
        {
            Interlocked.Decrement(ref _admitted);
            return null;
        }
        return new Lease(this);
    }

    public sealed class Lease(SessionPool pool) : IDisposable
    {
        private Session? _session;
        private bool _disposed;

        public async Task<Session> WaitAsync(CancellationToken ct)
        {
            await pool._available.WaitAsync(ct).ConfigureAwait(false);
            lock (pool._free) _session = pool._free.Pop();
            return _session;
        }

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            if (_session != null)
            {
                lock (pool._free) pool._free.Push(_session);
                pool._available.Release();
            }
            Interlocked.Decrement(ref pool._admitted);
        }
    }

    public void Dispose()
    {
        foreach (var s in _sessions) s.Dispose();
        _available.Dispose();
    }
}
