using System.Text;
using MicroLm.Gguf;
using MicroLm.Models;
using MicroLm.Tokenizers;

namespace MicroLm.Cli;

/// <summary>microlm tokenize: text to token ids. Needs only the vocabulary, so a GGUF file is opened
/// for its tokenizer keys alone (vocabulary-only files have no tensors and may name an architecture
/// the runtime does not run); a llama2.c checkpoint goes through its tokenizer file.</summary>
public static class TokenizeCommand
{
    public static int Run(Options o, TextWriter stdout)
    {
        string text;
        if (o.Get("-f", "--file") is { } textFile) text = new UTF8Encoding(false, false).GetString(File.ReadAllBytes(textFile));
        else text = o.Get("-p", "--prompt") ?? throw new UsageException("tokenize needs -p TEXT or -f FILE");

        List<int> tokens;
        string? path = ModelSource.Resolve(o);
        if (path == null)
        {
            using var model = Model.Load(ModelSource.DefaultModel());
            tokens = model.Tokenizer.Encode(text, !o.Has("--no-bos") && model.Tokenizer.AddBos);
        }
        else if (o.Get("--tokenizer", "-z") != null || path.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
        {
            using var model = Commands.LoadModel(o);
            tokens = model.Tokenizer.Encode(text, !o.Has("--no-bos") && model.Tokenizer.AddBos);
        }
        else
        {
            if (Directory.Exists(path)) throw new UsageException($"{Options.Printable(path)} is a folder, not a model file");
            using var file = GgufFile.Open(path);
            var tokenizer = Tokenizer.Load(file);
            tokens = tokenizer.Encode(text, !o.Has("--no-bos") && tokenizer.AddBos);
        }
        stdout.WriteLine(string.Join(' ', tokens));
        return 0;
    }
}
