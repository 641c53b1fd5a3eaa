using System.Text;
using MicroLm.Conversion;

namespace MicroLm.Tests.Conversion;

/// <summary>Fuzzing findings (tests/fuzz/regressions/hf): JSON whose strings are not text — invalid UTF-8, or a lone
/// surrogate escape — parses, and used to throw InvalidOperationException wherever a string was read later.
/// Now each is one MicroLmException naming the file.</summary>
public sealed class HfJsonTextTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("microlm-hfjson-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private static byte[] Safetensors(byte[] header)
    {
        var b = new byte[8 + header.Length + 4];
        BitConverter.TryWriteBytes(b.AsSpan(0, 8), (ulong)header.Length);
        header.CopyTo(b, 8);
        return b;
    }

    /// <summary>JSON bytes from <paramref name="text"/> with ' for " and § for the raw byte <paramref name="raw"/>.</summary>
    private static byte[] J(string text, byte raw = 0)
    {
        var parts = text.Replace('\'', '"').Split('§');
        var bytes = new List<byte>(Encoding.UTF8.GetBytes(parts[0]));
        foreach (var p in parts[1..]) { bytes.Add(raw); bytes.AddRange(Encoding.UTF8.GetBytes(p)); }
        return [.. bytes];
    }

    public static TheoryData<string, byte[]> BadHeaders() => new()
    {
        { "invalid UTF-8 in a tensor name", J("{'a§':{'dtype':'F32','shape':[1],'data_offsets':[0,4]}}", 0xFF) },
        { "lone surrogate escape in a tensor name", J("{'\\ud800':{'dtype':'F32','shape':[1],'data_offsets':[0,4]}}") },
        { "invalid UTF-8 in a dtype", J("{'a':{'dtype':'F3§','shape':[1],'data_offsets':[0,4]}}", 0xC3) },
        { "invalid UTF-8 in metadata", J("{'__metadata__':{'k':'§'},'a':{'dtype':'F32','shape':[1],'data_offsets':[0,4]}}", 0xBE) },
    };

    [Theory, MemberData(nameof(BadHeaders))]
    public void A_safetensors_header_with_strings_that_are_not_text_is_one_error(string what, byte[] header)
    {
        var e = Assert.Throws<MicroLmException>(() => SafetensorsFile.FromMemory("x.safetensors", Safetensors(header)).Dispose());
        Assert.True(e.Message.Contains("not valid text", StringComparison.Ordinal), what + ": " + e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void The_same_header_with_valid_text_loads()
    {
        using var f = SafetensorsFile.FromMemory("x.safetensors", Safetensors(J("{'a\u00e9':{'dtype':'F32','shape':[1],'data_offsets':[0,4]}}")));
        Assert.Equal(["a\u00e9"], f.Tensors.Keys);
    }

    [Theory]
    [InlineData("config.json")]
    [InlineData("tokenizer.json")]
    public void A_json_file_with_strings_that_are_not_text_is_one_error(string name)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, J("{'architectures': ['Llama§']}", 0xFF));
        var e = Assert.Throws<MicroLmException>(() => HfCheckpoint.ReadJson(path, required: true));
        Assert.Equal($"{path}: a JSON string is not valid text (invalid UTF-8 or a lone surrogate escape)", e.Message);
        File.WriteAllBytes(path, J("{'architectures': ['LlamaForCausalLM'], 'x': '\\udc00'}"));
        Assert.Throws<MicroLmException>(() => HfCheckpoint.ReadJson(path, required: true));
    }

    [Fact]
    public void A_checkpoint_whose_config_is_not_text_is_one_cli_error()
    {
        File.WriteAllBytes(Path.Combine(_dir, "config.json"), J("{'architectures': ['\\ud800']}"));
        var r = Cli.CliRun.Run("convert", "hf", _dir, "-o", Path.Combine(_dir, "out.gguf"));
        Cli.CliRun.AssertError(r, "not valid text");
        Assert.False(File.Exists(Path.Combine(_dir, "out.gguf")));
    }
}
