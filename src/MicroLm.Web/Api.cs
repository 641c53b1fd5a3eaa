using System.Globalization;
using System.Runtime.InteropServices.JavaScript;
using System.Text;
using MicroLm.Cli;
using MicroLm.Generation;
using MicroLm.Gguf;
using MicroLm.Models;
using MicroLm.Tensors;
using MicroLm.Tensors.Wasm;

namespace MicroLm.Web;

/// <summary>The JavaScript API. One model and one generation run at a time; every call returns
/// (or throws) quickly except <see cref="Next"/>, which runs at most the number of tokens it is
/// asked for, so the caller can yield to the UI between calls. Results that carry several values
/// are small JSON objects.</summary>
public static partial class Api
{
    private static byte[]? _bytes;
    private static Model? _model;
    private static Session? _session;
    private static Generator? _generator;
    private static IEnumerator<GeneratedToken>? _tokens;
    private static TraceWriter? _trace;
    private static int _generated, _promptTokens;
    private static bool _done;

    /// <summary>Loads a GGUF model from the bytes JavaScript passes (copied once, into the managed
    /// heap; tensors are then read in place). Returns JSON with the model's shape, or {"error": …}
    /// for a file that is not a usable model; the previous model is dropped either way.</summary>
    [JSExport]
    public static string LoadModel(byte[] bytes) => LoadModelWith(bytes, "float");

    /// <summary>As <see cref="LoadModel"/>, on the numeric backend named as the CLI's --backend ("float" or "fixed").</summary>
    [JSExport]
    public static string LoadModelWith(byte[] bytes, string backend)
    {
        Unload();
        try
        {
            var numeric = backend switch
            {
                "float" => Backend.Float,
                "fixed" => Backend.Fixed,
                _ => throw new MicroLmException($"unknown backend '{backend}' (float or fixed)"),
            };
            _bytes = bytes;
            _model = Model.Load(bytes, numeric);
            var c = _model.Config;
            return Json.Object(
                ("architecture", _model.File.GetString("general.architecture") ?? ""),
                ("name", _model.File.GetString("general.name") ?? ""),
                ("layers", c.Layers), ("dim", c.Dim), ("vocab", c.VocabSize), ("context", c.ContextLength),
                ("tensors", _model.File.Tensors.Count), ("modelBytes", (long)bytes.Length), ("backend", backend));
        }
        catch (Exception e) when (e is GgufFormatException or MicroLmException or KeyNotFoundException or ArgumentException or InvalidOperationException or OverflowException)
        {
            Unload();
            return Json.Object(("error", e.Message));
        }
    }

    [JSExport]
    public static void Unload()
    {
        _tokens?.Dispose();
        _tokens = null;
        _generator = null;
        _session?.Dispose();
        _session = null;
        _model?.Dispose();
        _model = null;
        _bytes = null;
        _trace = null;
        GC.Collect();
    }

    /// <summary>Token ids of the text, space-separated (BOS first when the model asks for it).</summary>
    [JSExport]
    public static string Tokenize(string text, bool addBos) =>
        string.Join(' ', RequireModel().Tokenizer.Encode(text, addBos && RequireModel().Tokenizer.AddBos));

    /// <summary>Starts a run. <paramref name="options"/> are the CLI's sampling flags ("--temp",
    /// "0.8", "--seed", "7", …), parsed exactly as `microlm verify` parses them, with the same
    /// defaults. Evaluates nothing yet. Returns JSON: the prompt's token count and its text as
    /// `microlm run` prints it, or {"error": …}.</summary>
    [JSExport]
    public static string Start(string prompt, int maxTokens, string[] options)
    {
        try
        {
            var model = RequireModel();
            var o = Options.Parse(Commands.VerifySpec, options);
            _tokens?.Dispose();
            _session?.Dispose();
            var tokens = model.Tokenizer.Encode(prompt, !o.Has("--no-bos") && model.Tokenizer.AddBos);
            if (tokens.Count == 0 && model.Tokenizer.BosId >= 0) tokens.Add(model.Tokenizer.BosId);
            if (tokens.Count == 0) throw new MicroLmException("the prompt is empty");
            maxTokens = System.Math.Max(0, maxTokens);
            // As the CLI sizes it: the model's context, or more if prompt + tokens need it.
            int ctx = o.Int(0, "-c", "--ctx-size");
            if (ctx == 0) ctx = System.Math.Max(model.Config.ContextLength, System.Math.Min(tokens.Count + maxTokens, 1 << 16));
            _session = model.CreateSession(ctx, 1, System.Math.Max(1, o.Int(32, "--batch", "-b")));
            if (tokens.Count > _session.ContextLength)
                throw new MicroLmException($"the prompt is {tokens.Count} tokens but the context holds {_session.ContextLength}");
            var trace = _traceRuns ? new TraceWriter() : null;
            _trace = trace;
            // The same generator set-up as `microlm verify`, so the trace hash equals the CLI's.
            _generator = new Generator(_session, Commands.Sampling(o), o.Int(0, "--batch", "-b"))
            {
                EvaluateLastToken = trace != null,
                StopAtEndOfSequence = !o.Has("--ignore-eos") && !_ignoreEos,
                OnLogits = trace == null ? null : (pos, token, logits) => trace.Add(pos, token, logits),
            };
            _tokens = _generator.Generate(tokens, System.Math.Min(maxTokens, _session.ContextLength - tokens.Count)).GetEnumerator();
            _generated = 0;
            _promptTokens = tokens.Count;
            _done = false;
            var text = new Utf8Stream();
            var sb = new StringBuilder();
            for (int i = 0; i < tokens.Count; i++) sb.Append(text.Push(model.Tokenizer.Decode(i == 0 ? -1 : tokens[i - 1], tokens[i])));
            return Json.Object(("promptTokens", tokens.Count), ("promptText", sb.ToString()), ("contextLength", _session.ContextLength));
        }
        catch (Exception e) when (e is MicroLmException or UsageException)
        {
            _tokens = null;
            _done = true;
            return Json.Object(("error", e.Message));
        }
    }

    /// <summary>Generates up to <paramref name="count"/> more tokens (the first call also evaluates
    /// the prompt). Returns JSON: the new text, the token ids, whether the run is over and why.</summary>
    [JSExport]
    public static string Next(int count)
    {
        var text = new StringBuilder();
        var ids = new List<int>();
        string? error = null;
        try
        {
            for (int i = 0; i < count && !_done; i++)
            {
                if (_tokens == null || !_tokens.MoveNext()) { _done = true; break; }
                text.Append(_tokens.Current.Text);
                ids.Add(_tokens.Current.Id);
                _generated++;
            }
        }
        catch (MicroLmException e)
        {
            error = e.Message;
            _done = true;
        }
        string stop = !_done ? "" : _generator == null ? "none" : _generator.StopReason switch
        {
            StopReason.EndOfSequence => "eos",
            StopReason.ContextFull => "context",
            _ => "max",
        };
        return Json.Object(("text", text.ToString()), ("ids", ids), ("done", _done), ("stop", error != null ? "error" : stop),
            ("generated", _generated), ("error", error));
    }

    private static bool _traceRuns = true;

    /// <summary>Whether runs started from now on keep the trace (every position's logits hashed, as
    /// `microlm verify`; the default). Off, a run computes only the logits it samples from, as
    /// `microlm run` does: the benchmark measures both.</summary>
    [JSExport]
    public static void SetTrace(bool on) => _traceRuns = on;

    private static bool _ignoreEos;

    /// <summary>Whether runs started from now on go on past an end-of-sequence token (a benchmark's fixed
    /// token count; the CLI's --ignore-eos).</summary>
    [JSExport]
    public static void SetIgnoreEos(bool on) => _ignoreEos = on;

    /// <summary>"trace SHA256" over every evaluated position so far: at the end of a run, the last
    /// line `microlm verify` prints for the same prompt, token count and sampling flags.</summary>
    [JSExport]
    public static string TraceHash() => _trace?.Final() ?? "";

    /// <summary>Memory figures in bytes: the model file, the KV cache, the managed heap.</summary>
    [JSExport]
    public static string Memory()
    {
        // Every layer's memory the session allocated: KV caches, sliding windows, recurrent states.
        long kv = _session?.MemoryBytes ?? 0;
        var gc = GC.GetGCMemoryInfo();
        return Json.Object(("modelBytes", (long)(_bytes?.Length ?? 0)), ("kvCacheBytes", kv),
            ("managedBytes", GC.GetTotalMemory(false)), ("heapBytes", gc.HeapSizeBytes),
            ("vectorBits", System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated ? 512 : System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated ? 256 : System.Runtime.Intrinsics.Vector128.IsHardwareAccelerated ? 128 : 0),
            ("kernels", KernelPath), ("compiledCalls", CompiledKernels.Calls));
    }

    /// <summary>The compiled kernels' WebAssembly module (generated by the runtime; a few KB), for
    /// kernels.js to instantiate against the runtime's memory.</summary>
    [JSExport]
    public static byte[] KernelModule() => CompiledKernels.Module().Bytes;

    /// <summary>The module's export names in function order, space-separated.</summary>
    [JSExport]
    public static string KernelNames() => string.Join(' ', CompiledKernels.Module().Types.Select(t => TensorTypes.Get(t).Name));

    /// <summary>The module's utility exports (argmax, SiLU gating, …) in the order the runtime calls them by, space-separated.</summary>
    [JSExport]
    public static string KernelUtilities() => CompiledKernels.UtilityNames;

    /// <summary>Switches matmuls to the compiled kernels (kernels.js has installed "microlm-kernels".matmul)
    /// or back to the C# kernels (same bits either way). Returns the path now running.</summary>
    [JSExport]
    public static string UseCompiledKernels(bool on)
    {
        CompiledKernels.Install(on ? new KernelHost() : null);
        return KernelPath;
    }

    private static string KernelPath => CompiledKernels.Active ? "wasm-simd" : "interpreter";

    /// <summary>Runs a `microlm` command line (files must be in the Emscripten file system) and
    /// returns [exit code, stdout, stderr].</summary>
    [JSExport]
    public static string[] RunCli(string[] args)
    {
        var stdout = new StringWriter(CultureInfo.InvariantCulture) { NewLine = "\n" };
        var stderr = new StringWriter(CultureInfo.InvariantCulture) { NewLine = "\n" };
        int code = CliMain.Run(args, stdout, stderr);
        return [code.ToString(CultureInfo.InvariantCulture), stdout.ToString(), stderr.ToString()];
    }

    private static Model RequireModel() => _model ?? throw new MicroLmException("no model is loaded");
}

/// <summary>Just enough JSON for flat result objects (no System.Text.Json: smaller download).</summary>
internal static class Json
{
    public static string Object(params (string Key, object? Value)[] fields)
    {
        var sb = new StringBuilder("{");
        foreach (var (key, value) in fields)
        {
            if (sb.Length > 1) sb.Append(',');
            String(sb, key);
            sb.Append(':');
            Value(sb, value);
        }
        return sb.Append('}').ToString();
    }

    private static void Value(StringBuilder sb, object? v)
    {
        switch (v)
        {
            case null: sb.Append("null"); break;
            case string s: String(sb, s); break;
            case bool b: sb.Append(b ? "true" : "false"); break;
            case int i: sb.Append(i.ToString(CultureInfo.InvariantCulture)); break;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case IEnumerable<int> list: sb.Append('[').AppendJoin(',', list).Append(']'); break;
            default: String(sb, Convert.ToString(v, CultureInfo.InvariantCulture) ?? ""); break;
        }
    }

    private static void String(StringBuilder sb, string s) => sb.Append(MicroLm.Gguf.GgufValue.Quote(s));
}
