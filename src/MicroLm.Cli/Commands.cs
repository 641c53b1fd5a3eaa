using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using MicroLm.Generation;
using MicroLm.IO;
using MicroLm.Models;
using MicroLm.Sampling;

namespace MicroLm.Cli;

/// <summary>Flags several commands share, declared once.</summary>
public static class CommonFlags
{
    public static readonly Flag[] Model =
    [
        Flag.Path("-m|--model", "FILE", "GGUF model, or a llama2.c checkpoint (.bin) with --tokenizer; without -m, -hf or --model-url: the built-in default model"),
        Flag.Text("-hf|--hf-repo", "OWNER/REPO[:FILE]", "download from Hugging Face into the cache (MICROLM_CACHE; HF_TOKEN for gated repositories) and use it"),
        Flag.Text("-hff|--hf-file", "FILE", "the file in the -hf repository (instead of :FILE)"),
        Flag.Text("-mu|--model-url", "URL", "download from this URL into the cache and use it"),
        Flag.Path("--tokenizer|-z", "TOK.bin", "llama2.c tokenizer for a .bin checkpoint"),
        Flag.Switch("--no-mmap", "read the model into memory instead of mapping it (for files that may change while in use)"),
        Flag.Text("--backend", "float|fixed", "numeric backend: float (default) or fixed, integers only between the weights and the logits (docs/fixed-point.md)"),
    ];

    public static readonly Flag[] Prompt =
    [
        Flag.Text("-p|--prompt", "TEXT", "the prompt", allowEmpty: true),
        Flag.Path("-f|--file", "FILE", "read the prompt from a file"),
        Flag.Switch("--no-bos", "do not add the beginning-of-sequence token"),
    ];

    public static readonly Flag[] Sampling =
    [
        Flag.Float("--temp", "T", "temperature; 0 is greedy (default 0.8)", min: 0),
        Flag.Int("--top-k", "K", "keep the K most likely tokens; 0 keeps all (default 40)", min: 0),
        Flag.Float("--top-p", "P", "keep the most likely tokens up to probability P (default 0.95)", min: 0, max: 1),
        Flag.Float("--min-p", "P", "drop tokens below P times the most likely one (default 0.05)", min: 0, max: 1),
        Flag.Float("--repeat-penalty", "R", "penalty for recently seen tokens; 1 is off (default 1)", min: 0),
        Flag.Int("--repeat-last-n", "N", "how many recent tokens the penalty looks at; -1: the whole context (default 64)", min: -1),
        Flag.UInt64("--seed|-s", "S", "random seed (default 42)"),
        Flag.Switch("--ignore-eos", "keep generating after an end-of-sequence token"),
    ];

    public static readonly Flag[] Session =
    [
        Flag.Int("-c|--ctx-size", "N", "context length; 0: the model's, or more if prompt and -n need it (default 0)", min: 0, max: 1 << 20),
        Flag.Int("-t|--threads", "N", "threads; more than the processors are not used (default 1)", min: 1),
        Flag.Int("--batch|-b", "B", "most prompt tokens evaluated at once, capped by the context (default 32)", min: 0),
        .. CacheTypeFlags.Flags,
    ];
}

public static class Commands
{
    public static readonly CommandSpec RunSpec = new()
    {
        Name = "run",
        Synopsis = "[-m FILE | -hf OWNER/REPO[:FILE] | --model-url URL] -p PROMPT [-n N] [sampling options] [-t THREADS] [-c CTX] [--backend float|fixed]",
        Summary = "Generates text after a prompt and streams it to stdout; timings go to stderr.",
        Flags = [.. CommonFlags.Model, .. CommonFlags.Prompt, Flag.Int("-n|--n-predict", "N", "tokens to generate; -1: until the context is full (default -1)", min: -1),
            .. CommonFlags.Sampling, .. CommonFlags.Session],
        Run = Run,
        ContractExample = ["-m", "$MODEL", "-p", "Once", "-n", "4", "-c", "32"],
    };

    public static readonly CommandSpec TokenizeSpec = new()
    {
        Name = "tokenize",
        Synopsis = "-m FILE (-p TEXT | -f FILE) [--no-bos]",
        Summary = "Prints the token ids of a text.",
        Flags = [.. CommonFlags.Model, .. CommonFlags.Prompt],
        Run = (o, stdout, _) => TokenizeCommand.Run(o, stdout),
        ContractExample = ["-m", "$MODEL", "-p", "Once upon a time"],
    };

    public static readonly CommandSpec VerifySpec = new()
    {
        Name = "verify",
        Synopsis = "-m FILE (-p TEXT | --ids \"1 2 3\") -n N [sampling options] [-t THREADS] [--batch B] [--expect TRACE] [--dump-logits PATH] [--backend float|fixed]",
        Summary = "Prints a trace line per evaluated position (a hash of its logits) and a final hash; with --expect, compares (exit 3 on a mismatch).",
        Flags = [.. CommonFlags.Model, .. CommonFlags.Prompt, Flag.Text("--ids", "\"1 2 3\"", "the prompt as token ids"),
            Flag.Int("-n|--n-predict", "N", "tokens to generate (default 16)", min: 0),
            .. CommonFlags.Sampling, .. CommonFlags.Session,
            Flag.Path("--expect", "TRACE", "compare with this trace file"),
            Flag.Path("--dump-logits", "PATH", "write every position's logits (float32) to this file")],
        Run = Verify,
        ContractExample = ["-m", "$MODEL", "-p", "Once", "-n", "3", "-c", "32"],
    };

    public static readonly CommandSpec ConvertSpec = new()
    {
        Name = "convert",
        Synopsis = "llama2c MODEL.bin --tokenizer TOK.bin -o OUT.gguf | hf DIR -o OUT.gguf [--outtype f32|f16|bf16|q8_0|auto]",
        Summary = "Converts a llama2.c checkpoint and tokenizer, or a Hugging Face checkpoint directory (LLaMA, GPT-NeoX, GPT-Neo), to a GGUF file (written to a temporary name, checked, then renamed).",
        Flags = [Flag.Path("--tokenizer|-z", "TOK.bin", "the llama2.c tokenizer"), Flag.Path("-o|--output", "OUT.gguf", "the GGUF file to write"),
            Flag.Text("--outtype", "TYPE", "hf: type of the weight matrices, f32|f16|bf16|q8_0|auto (auto: the checkpoint's own)")],
        MinPositional = 2,
        MaxPositional = 2,
        Run = Convert,
        ContractExample = ["llama2c", "$LLAMA2C", "--tokenizer", "$TOKENIZER", "-o", "$OUT"],
    };

    /// <summary>-m FILE: a GGUF file (mapped, or read into memory with --no-mmap), or a llama2.c
    /// checkpoint together with --tokenizer; -hf or --model-url (downloaded, see ModelSource); none: the embedded default model.</summary>
    public static Model LoadModel(Options o)
    {
        string? path = ModelSource.Resolve(o);
        if (path == null) return Model.Load(ModelSource.DefaultModel(), Backend(o)); // no -m/-hf/--model-url: the embedded default
        if (Directory.Exists(path)) throw new UsageException($"{Options.Printable(path)} is a folder, not a model file");
        string? tokenizer = o.Get("--tokenizer", "-z");
        if (tokenizer != null || path.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
        {
            if (tokenizer == null) throw new UsageException("a llama2.c checkpoint (.bin) needs --tokenizer TOK.bin");
            return Model.Load(Llama2cCheckpoint.ToGguf(File.ReadAllBytes(path), File.ReadAllBytes(tokenizer)), Backend(o));
        }
        if (o.Has("--no-mmap"))
        {
            var info = new FileInfo(path);
            if (info.Exists && info.Length > Model.MaxBytesInMemory) throw new MicroLmException($"{path} is too large to read into memory ({info.Length:N0} bytes)");
            if (!info.Exists) throw new FileNotFoundException($"no such file: {path}", path);
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
            return Model.Load(stream, Backend(o));
        }
        return Model.Load(path, Backend(o));
    }

    /// <summary>--backend float|fixed (default float).</summary>
    internal static Backend Backend(Options o) => o.Get("--backend") switch
    {
        null or "float" => Models.Backend.Float,
        "fixed" => Models.Backend.Fixed,
        var v => throw new UsageException($"--backend expects float or fixed, got '{v}'"),
    };

    public static SamplingOptions Sampling(Options o)
    {
        int lastN = o.Int(64, "--repeat-last-n");
        return new()
        {
            Temperature = o.Float(0.8f, "--temp"),
            TopK = o.Int(40, "--top-k"),
            TopP = o.Float(0.95f, "--top-p"),
            MinP = o.Float(0.05f, "--min-p"),
            RepeatPenalty = o.Float(1f, "--repeat-penalty"),
            RepeatLastN = lastN < 0 ? int.MaxValue : lastN, // the sampler keeps at most the context's worth
            Seed = o.ULong(42, "--seed", "-s"),
        };
    }

    /// <summary>A session for <paramref name="needed"/> positions: -c, or the model's context (more if
    /// needed, up to 65,536); the batch is capped by the context (so its scratch is O(min(batch, context)));
    /// threads beyond the processors are not started. Warns on stderr when the run will pass the
    /// context the model was trained on.</summary>
    private static Session CreateSession(Model model, Options o, int needed, TextWriter stderr)
    {
        int trained = model.Config.ContextLength;
        int ctx = o.Int(0, "-c", "--ctx-size");
        if (ctx == 0) ctx = System.Math.Max(trained, System.Math.Min(needed, 1 << 16));
        int batch = System.Math.Clamp(o.Int(32, "--batch", "-b"), 1, ctx);
        long bytes = model.Config.KvCacheBytes(ctx, 4) + model.Config.ScratchBytes(ctx) + (long)batch * model.Config.VocabSize * sizeof(float);
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (available > 0 && bytes > available)
            throw new MicroLmException($"a context of {ctx:N0} positions needs {bytes:N0} bytes of cache and scratch, more than the {available:N0} available (use a smaller -c)");
        if (System.Math.Min(needed, ctx) > trained && trained > 0)
            stderr.WriteLine($"microlm: warning: this run uses {System.Math.Min(needed, ctx)} positions but the model was trained on {trained}; text past position {trained} may be poor");
        return CacheTypeFlags.CreateSession(model, o, ctx, o.Int(1, "-t", "--threads"), batch);
    }

    private static List<int> Prompt(Model model, Options o, bool allowIds)
    {
        if (allowIds && o.Get("--ids") is { } ids)
        {
            var list = new List<int>();
            foreach (var part in ids.Split([' ', ',', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries))
                list.Add(int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out int id) ? id
                    : throw new UsageException($"--ids: '{part}' is not a token id"));
            return list;
        }
        string text = o.Get("-p", "--prompt") ?? (o.Get("-f", "--file") is { } f ? File.ReadAllText(f) : "");
        var tokens = model.Tokenizer.Encode(text, !o.Has("--no-bos") && model.Tokenizer.AddBos);
        if (tokens.Count == 0 && model.Tokenizer.BosId >= 0) tokens.Add(model.Tokenizer.BosId);
        if (tokens.Count == 0) throw new UsageException("the prompt is empty");
        return tokens;
    }

    private static int Run(Options o, TextWriter stdout, TextWriter stderr)
    {
        var sw = Stopwatch.StartNew();
        using var model = LoadModel(o);
        double loadMs = sw.Elapsed.TotalMilliseconds;
        var prompt = Prompt(model, o, allowIds: false);
        int n = o.Int(-1, "-n", "--n-predict");
        using var session = CreateSession(model, o, n < 0 ? prompt.Count : (int)System.Math.Min((long)prompt.Count + n, int.MaxValue), stderr);
        if (n < 0) n = session.ContextLength - prompt.Count;
        if (prompt.Count > session.ContextLength)
            throw new MicroLmException($"the prompt is {prompt.Count} tokens but the context holds {session.ContextLength} (use -c)");

        // Built before anything is printed, so a bad sampling setting is the only line of output.
        var generator = new Generator(session, Sampling(o), o.Int(0, "--batch", "-b")) { StopAtEndOfSequence = !o.Has("--ignore-eos") };
        // As llama2.c prints it: the prompt's own tokens decoded, then each generated piece, then a newline.
        var tokenizer = model.Tokenizer;
        var text = new Utf8Stream();
        var output = new StringBuilder();
        for (int i = 0; i < prompt.Count; i++) output.Append(text.Push(tokenizer.Decode(i == 0 ? -1 : prompt[i - 1], prompt[i])));
        stdout.Write(output.ToString());
        stdout.Flush();
        var genStart = Stopwatch.StartNew();
        int generated = 0;
        double promptMs = 0;
        foreach (var token in generator.Generate(prompt, System.Math.Min(n, session.ContextLength - prompt.Count)))
        {
            if (generated == 0) promptMs = genStart.Elapsed.TotalMilliseconds;
            stdout.Write(token.Text);
            stdout.Flush();
            generated++;
        }
        stdout.Write('\n');
        stdout.Flush();
        double total = genStart.Elapsed.TotalMilliseconds;
        if (generator.StopReason == StopReason.ContextFull)
            stderr.WriteLine($"microlm: stopped at the end of the context ({session.ContextLength} positions)");
        stderr.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"microlm: load {loadMs:F1} ms, prompt {prompt.Count} tokens, generated {generated} tokens in {total:F1} ms ({(generated > 1 ? (generated - 1) / ((total - promptMs) / 1000) : 0):F1} tok/s)"));
        return 0;
    }

    private static int Verify(Options o, TextWriter stdout, TextWriter stderr)
    {
        using var model = LoadModel(o);
        var prompt = Prompt(model, o, allowIds: true);
        int n = o.Int(16, "-n", "--n-predict");
        using var session = CreateSession(model, o, (int)System.Math.Min((long)prompt.Count + n, int.MaxValue), stderr);
        string[]? expected = o.Get("--expect") is { } e ? File.ReadAllLines(e) : null;
        using var dump = o.Get("--dump-logits") is { } d ? SafeFile.Create(d) : null;
        var trace = new TraceWriter();
        int line = 0;
        bool mismatch = false;
        void Emit(string text)
        {
            if (mismatch) return;
            if (expected != null && (line >= expected.Length || expected[line] != text))
            {
                string where = text.StartsWith("trace", StringComparison.Ordinal) ? "the final trace hash" : $"position {text.Split('\t')[0]}";
                stderr.WriteLine($"microlm: verify: mismatch at {where} (line {line + 1}): expected '{(line < expected.Length ? expected[line] : "<end>")}', got '{text}'");
                mismatch = true;
            }
            stdout.WriteLine(text);
            line++;
        }
        var generator = new Generator(session, Sampling(o), o.Int(0, "--batch", "-b"))
        {
            EvaluateLastToken = true,
            StopAtEndOfSequence = !o.Has("--ignore-eos"),
            OnLogits = (pos, token, logits) =>
            {
                dump?.Stream.Write(MemoryMarshal.AsBytes(logits));
                Emit(trace.Add(pos, token, logits));
            },
        };
        foreach (var _ in generator.Generate(prompt, n)) { if (mismatch) break; }
        if (!mismatch)
            Emit(trace.Final());
        if (!mismatch && expected != null && line != expected.Length)
        {
            stderr.WriteLine($"microlm: verify: the expected trace has {expected.Length} lines, this run printed {line}");
            mismatch = true;
        }
        dump?.Commit();
        return mismatch ? 3 : 0;
    }

    private static int Convert(Options o, TextWriter stdout, TextWriter stderr)
    {
        if (o.Positional[0] == "hf") return ConvertHfCommand.Run(o, stdout, stderr);
        if (o.Positional[0] != "llama2c")
            throw new UsageException($"convert knows llama2c and hf, not '{Options.Printable(o.Positional[0])}' (usage: microlm convert {ConvertSpec.Synopsis})");
        string tokenizer = o.Require("TOK.bin", "--tokenizer", "-z");
        string output = o.Require("OUT.gguf", "-o", "--output");
        var gguf = Llama2cCheckpoint.ToGguf(File.ReadAllBytes(o.Positional[1]), File.ReadAllBytes(tokenizer));
        int layers, vocab;
        using (var check = Model.Load(gguf)) // the result must load before anything is written
        {
            layers = check.Config.Layers;
            vocab = check.Config.VocabSize;
        }
        // ...and so must the bytes as written, before they replace an existing file.
        using (var bar = new ConsoleProgress("writing " + Options.Printable(Path.GetFileName(output)), gguf.Length, stderr))
            SafeFile.WriteAllBytes(output, gguf, check: tmp => Model.Load(tmp).Dispose(), progress: bar.Report);
        stderr.WriteLine($"microlm: wrote {Options.Printable(output, int.MaxValue)} ({gguf.Length:N0} bytes, {layers} layers, vocab {vocab})");
        return 0;
    }
}
