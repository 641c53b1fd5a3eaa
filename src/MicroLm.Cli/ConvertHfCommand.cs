using MicroLm.Conversion;

namespace MicroLm.Cli;

/// <summary>`microlm convert hf DIR -o OUT.gguf [--outtype f32|f16|bf16|q8_0|auto]`: a Hugging Face
/// checkpoint (config.json, safetensors, tokenizer.json) to GGUF, progress on stderr.</summary>
public static class ConvertHfCommand
{
    public static int Run(Options o, TextWriter stdout, TextWriter stderr)
    {
        if (o.Positional.Count != 2 || o.Positional[0] != "hf")
            throw new UsageException("usage: convert hf DIR -o OUT.gguf [--outtype f32|f16|bf16|q8_0|auto]");
        string output = o.Require("OUT.gguf", "-o", "--output");
        string outType = (o.Get("--outtype") ?? "auto").ToLowerInvariant();
        var config = HfConverter.Convert(o.Positional[1], output, outType, line => stderr.WriteLine($"microlm: {line}"));
        stderr.WriteLine($"microlm: wrote {output} ({new FileInfo(output).Length:N0} bytes, {config.Architecture}, {config.Layers} layers, vocab {config.VocabSize})");
        return 0;
    }
}
