using System.Text;
using MicroLm.Cli;
using MicroLm.Conversion;
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
    public static readonly string[] Names = ["gguf", "tokenizer", "llama2c", "cli", "hf"];

    /// <summary>Exceptions that mean "this input is invalid", reported to the user as one line.</summary>
    public static bool IsExpected(Exception e) => e is GgufFormatException or MicroLmException or UsageException or KeyNotFoundException;

    public static Action<byte[]> Get(string name, string shared) => name switch
    {
        "gguf" => Gguf,
        "tokenizer" => Tokenizers(shared),
        "llama2c" => Llama2c(shared),
        "cli" => Cli,
        "hf" => HuggingFace(),
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

    /// <summary>A Hugging Face checkpoint folder as one input (<see cref="HfBundle"/>: config.json, model.safetensors or
    /// an index and shards, tokenizer files; an optional "outtype" entry picks the output type): convert it in memory,
    /// load the GGUF, generate four tokens. The files go to a private temporary folder (under /dev/shm when there is one), emptied before each input.</summary>
    public static Action<byte[]> HuggingFace()
    {
        string? dir = null;
        return input =>
        {
            // In memory where there is a tmpfs: on a disk file system, creating and deleting the files costs ten times the conversion.
            if (dir == null)
            {
                dir = Directory.Exists("/dev/shm") ? Directory.CreateDirectory(Path.Combine("/dev/shm", $"microlm-fuzz-hf-{Environment.ProcessId}")).FullName
                    : Directory.CreateTempSubdirectory("microlm-fuzz-hf-").FullName;
                string made = dir;
                // Once per process: a handler added per input grew the event's invocation list without bound (the heap
                // limit ended the harness after ~2.4 million inputs, which AFL++ counted as crashes).
                AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { Directory.Delete(made, true); } catch (IOException) { } };
            }
            foreach (var f in Directory.GetFiles(dir)) File.Delete(f);
            string outType = "auto";
            foreach (var (name, bytes) in HfBundle.Split(input))
            {
                if (name == "outtype") outType = HfConverter.OutTypes[(bytes.Length > 0 ? bytes[0] : 0) % HfConverter.OutTypes.Length];
                else File.WriteAllBytes(Path.Combine(dir, name), bytes);
            }
            var writer = HfConverter.Build(dir, outType);
            var gguf = new MemoryStream();
            writer.WriteTo(gguf);
            using var model = Model.Load(gguf.ToArray());
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

/// <summary>Several named files in one fuzz input: each entry is the marker "\0FILE ", a plain file name, a newline,
/// then the file's bytes up to the next marker. Bytes before the first marker, and entries whose names are not plain
/// file names (letters, digits, '.', '_', '-'; at most 64), are ignored: the target is the reader, not the file system.</summary>
public static class HfBundle
{
    private static readonly byte[] Marker = "\0FILE "u8.ToArray();

    public static List<(string Name, byte[] Bytes)> Split(byte[] input)
    {
        var files = new List<(string, byte[])>();
        var span = input.AsSpan();
        int at = span.IndexOf(Marker);
        while (at >= 0)
        {
            int nameStart = at + Marker.Length;
            int newline = span[nameStart..].IndexOf((byte)'\n');
            if (newline < 0) break;
            int bodyStart = nameStart + newline + 1;
            int next = span[bodyStart..].IndexOf(Marker);
            int bodyEnd = next < 0 ? span.Length : bodyStart + next;
            string name = Encoding.UTF8.GetString(input, nameStart, newline);
            if (name.Length is > 0 and <= 64 && name is not ("." or "..") && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
                files.Add((name, input[bodyStart..bodyEnd]));
            at = next < 0 ? -1 : bodyStart + next;
        }
        return files;
    }

    public static byte[] Join(IEnumerable<(string Name, byte[] Bytes)> files)
    {
        var ms = new MemoryStream();
        foreach (var (name, bytes) in files)
        {
            ms.Write(Marker);
            ms.Write(Encoding.UTF8.GetBytes(name + "\n"));
            ms.Write(bytes);
        }
        return ms.ToArray();
    }
}
