using System.Text;
using MicroLm.Cli;
using MicroLm.Generation;
using MicroLm.Gguf;
using MicroLm.Models;
using MicroLm.Sampling;
using MicroLm.Tokenizers;

namespace MicroLm.Fuzz;

/// <summary>The fuzz targets. Each takes one input and either returns or throws an exception that the
/// project documents for bad input (<see cref="IsExpected"/>); anything else — another exception type, a
/// crash, a hang, an allocation past the bound — is a finding. Shared by the AFL++ harness and the tests
/// that replay the corpus and past findings.</summary>
public static class FuzzTargets
{
    public static readonly string[] Names = ["gguf", "tokenizer", "llama2c", "cli"];

    /// <summary>Exceptions that mean "this input is invalid", reported to the user as one line.</summary>
    public static bool IsExpected(Exception e) => e is GgufFormatException or MicroLmException or UsageException or KeyNotFoundException;

    public static Action<byte[]> Get(string name, string shared) => name switch
    {
        "gguf" => Gguf,
        "tokenizer" => Tokenizers(shared),
        "llama2c" => Llama2c(shared),
        "cli" => Cli,
        _ => throw new ArgumentException($"unknown target {name}; targets: {string.Join(", ", Names)}"),
    };

    /// <summary>A GGUF image: parse, load as a model, and generate four tokens in a small context.</summary>
    public static void Gguf(byte[] input)
    {
        using var model = Model.Load(input);
        Generate(model);
    }

    private static void Generate(Model model)
    {
        // A small context whatever the file says, so the KV cache stays within the bound.
        using var session = model.CreateSession(contextLength: 16, threads: 1, maxBatch: 4);
        var generator = new Generator(session, new SamplingOptions { Seed = 1 }) { StopAtEndOfSequence = false };
        var prompt = model.Tokenizer.Encode("Once upon", true);
        if (prompt.Count == 0) prompt.Add(0);
        if (prompt.Count > 8) prompt.RemoveRange(8, prompt.Count - 8);
        foreach (var _ in generator.Generate(prompt, 4)) { }
    }

    /// <summary>First byte: which real vocabulary; the rest: UTF-8 text (invalid bytes become U+FFFD).
    /// Encodes, checks every id is in the vocabulary, decodes every token.
    /// (Vocabularies load on the first call: under AFL++ the instrumented runtime may only run inside the fuzz loop.)</summary>
    public static Action<byte[]> Tokenizers(string shared)
    {
        List<Tokenizer>? loaded = null;
        List<Tokenizer> Load()
        {
            var list = new List<Tokenizer>();
            foreach (var f in Directory.GetFiles(Path.Combine(shared, "tokenizer-vectors"), "ggml-vocab-*.gguf").Order())
            {
                try
                {
                    using var file = GgufFile.Open(f);
                    list.Add(Tokenizer.Load(file));
                }
                catch (Exception e) when (IsExpected(e)) { } // a vocabulary this project does not read (yet)
            }
            return list.Count > 0 ? list : throw new InvalidOperationException("no vocabulary loaded from " + shared);
        }
        return input =>
        {
            var vocabularies = loaded ??= Load();
            if (input.Length == 0) return;
            var t = vocabularies[input[0] % vocabularies.Count];
            string text = Encoding.UTF8.GetString(input, 1, input.Length - 1);
            var ids = t.Encode(text, input[0] >= 128);
            int previous = -1;
            foreach (int id in ids)
            {
                if ((uint)id >= (uint)t.VocabSize) throw new InvalidOperationException($"id {id} outside the vocabulary of {t.VocabSize}");
                t.Decode(previous, id);
                previous = id;
            }
        };
    }

    /// <summary>A llama2.c checkpoint (with the shared 512-token tokenizer): convert, load, generate.</summary>
    public static Action<byte[]> Llama2c(string shared)
    {
        var tokenizer = File.ReadAllBytes(Path.Combine(shared, "models", "llama2c", "tok512.bin"));
        return input =>
        {
            var gguf = Llama2cCheckpoint.ToGguf(input, tokenizer);
            using var model = Model.Load(gguf);
            Generate(model);
        };
    }

    /// <summary>A command line (words separated by NUL; the first picks the command): parse it against the
    /// command's declared flags, then read every declared flag as the command would.</summary>
    public static void Cli(byte[] input)
    {
        var words = Encoding.UTF8.GetString(input).Split('\0');
        var spec = CliMain.All[(words[0].Length > 0 ? words[0][0] : 0) % CliMain.All.Count];
        var o = Options.Parse(spec, words[1..]);
        foreach (var f in spec.Flags)
        {
            switch (f.Kind)
            {
                case FlagKind.Switch: o.Has(f.Name); break;
                case FlagKind.Int: o.Int(0, f.Name); break;
                case FlagKind.Float:
                    float x = o.Float(0, f.Name);
                    if (!float.IsFinite(x)) throw new InvalidOperationException($"{f.Name} let through {x}");
                    break;
                case FlagKind.UInt64: o.ULong(0, f.Name); break;
                case FlagKind.IntList: o.IntList([], f.Name); break;
                default: o.Get(f.Name); break;
            }
        }
        if (CommonFlags.Sampling.All(f => spec.Find(f.Name) != null)) Commands.Sampling(o);
    }
}
