using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using MicroLm.Generation;
using MicroLm.Models;
using MicroLm.Sampling;

namespace MicroLm.Cli;

public static partial class Commands
{
    public static int Dispatch(string command, Options o, TextWriter stdout, TextWriter stderr) => command switch
    {
        "run" => Run(o, stdout, stderr),
        "tokenize" => Tokenize(o, stdout),
        "verify" => Verify(o, stdout, stderr),
        "convert" => Convert(o, stdout, stderr),
        "bench" => BenchCommand.Run(o, stdout, stderr),
        _ when HostCommands.TryGetValue(command, out var hosted) => hosted(o, stdout, stderr),
        _ => throw new UsageException($"unknown command '{command}'\n{CliMain.Usage}"),
    };

    /// <summary>-m FILE: a GGUF file, or a llama2.c checkpoint together with --tokenizer.</summary>
    public static Model LoadModel(Options o)
    {
        string path = o.Require("FILE", "-m", "--model");
        string? tokenizer = o.Get("--tokenizer", "-z");
        if (tokenizer != null || path.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
        {
            if (tokenizer == null) throw new UsageException("a llama2.c checkpoint (.bin) needs --tokenizer TOK.bin");
            return Model.Load(Llama2cCheckpoint.ToGguf(File.ReadAllBytes(path), File.ReadAllBytes(tokenizer)));
        }
        return Model.Load(path);
    }

    public static SamplingOptions Sampling(Options o) => new()
    {
        Temperature = o.Float(0.8f, "--temp"),
        TopK = o.Int(40, "--top-k"),
        TopP = o.Float(0.95f, "--top-p"),
        MinP = o.Float(0.05f, "--min-p"),
        RepeatPenalty = o.Float(1f, "--repeat-penalty"),
        RepeatLastN = o.Int(64, "--repeat-last-n"),
        Seed = o.ULong(42, "--seed", "-s"),
    };

    private static Session CreateSession(Model model, Options o, int needed)
    {
        int ctx = o.Int(0, "-c", "--ctx-size");
        if (ctx == 0) ctx = System.Math.Max(model.Config.ContextLength, System.Math.Min(needed, 1 << 16));
        return model.CreateSession(ctx, o.Int(1, "-t", "--threads"), System.Math.Max(1, o.Int(32, "--batch", "-b")));
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
        using var session = CreateSession(model, o, prompt.Count + System.Math.Max(n, 0));
        if (n < 0) n = session.ContextLength - prompt.Count;
        if (prompt.Count > session.ContextLength)
            throw new MicroLmException($"the prompt is {prompt.Count} tokens but the context holds {session.ContextLength} (use -c)");

        // As llama2.c prints it: the prompt's own tokens decoded, then each generated piece, then a newline.
        var tokenizer = model.Tokenizer;
        var text = new Utf8Stream();
        var output = new StringBuilder();
        for (int i = 0; i < prompt.Count; i++) output.Append(text.Push(tokenizer.Decode(i == 0 ? -1 : prompt[i - 1], prompt[i])));
        stdout.Write(output.ToString());
        stdout.Flush();
        var generator = new Generator(session, Sampling(o), o.Int(0, "--batch", "-b"));
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

    private static int Tokenize(Options o, TextWriter stdout)
    {
        using var model = LoadModel(o);
        List<int> tokens;
        if (o.Get("-f", "--file") is { } path)
        {
            var bytes = File.ReadAllBytes(path);
            tokens = model.Tokenizer.Encode(new UTF8Encoding(false, false).GetString(bytes), !o.Has("--no-bos") && model.Tokenizer.AddBos);
        }
        else
        {
            string text = o.Get("-p", "--prompt") ?? throw new UsageException("tokenize needs -p TEXT or -f FILE");
            tokens = model.Tokenizer.Encode(text, !o.Has("--no-bos") && model.Tokenizer.AddBos);
        }
        stdout.WriteLine(string.Join(' ', tokens));
        return 0;
    }

    private static int Verify(Options o, TextWriter stdout, TextWriter stderr)
    {
        using var model = LoadModel(o);
        var prompt = Prompt(model, o, allowIds: true);
        int n = o.Int(16, "-n", "--n-predict");
        using var session = CreateSession(model, o, prompt.Count + n);
        string[]? expected = o.Get("--expect") is { } e ? File.ReadAllLines(e) : null;
        using var dump = o.Get("--dump-logits") is { } d ? File.Create(d) : null;
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
                dump?.Write(MemoryMarshal.AsBytes(logits));
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
        return mismatch ? 3 : 0;
    }

    private static int Convert(Options o, TextWriter stdout, TextWriter stderr)
    {
        if (o.Positional.Count != 2 || o.Positional[0] != "llama2c")
            throw new UsageException("usage: convert llama2c MODEL.bin --tokenizer TOK.bin -o OUT.gguf");
        string tokenizer = o.Require("TOK.bin", "--tokenizer", "-z");
        string output = o.Require("OUT.gguf", "-o", "--output");
        var gguf = Llama2cCheckpoint.ToGguf(File.ReadAllBytes(o.Positional[1]), File.ReadAllBytes(tokenizer));
        File.WriteAllBytes(output, gguf);
        using var check = Model.Load(gguf); // the result must load
        stderr.WriteLine($"microlm: wrote {output} ({gguf.Length:N0} bytes, {check.Config.Layers} layers, vocab {check.Config.VocabSize})");
        return 0;
    }
}
