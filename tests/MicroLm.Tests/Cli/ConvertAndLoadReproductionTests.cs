using System.Buffers.Binary;
using MicroLm.Cli;
using MicroLm.Gguf;
using MicroLm.Models;
using static MicroLm.Tests.Cli.CliRun;

namespace MicroLm.Tests.Cli;

/// <summary>Issue #18's reproductions 9–13: llama2.c headers, unloadable conversions, files that change
/// while in use, names with terminal controls.</summary>
public class ConvertAndLoadReproductionTests
{
    private static byte[] Header(params int[] fields)
    {
        var b = new byte[28];
        for (int i = 0; i < 7; i++) BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(i * 4), fields[i]);
        return b;
    }

    [SharedFact] // 9
    public void A_llama2c_vocab_of_minus_two_to_the_31_is_an_invalid_header()
    {
        string dir = TempDir();
        try
        {
            var original = File.ReadAllBytes(Llama2c);
            string bad = Path.Combine(dir, "vmin.bin"), output = Path.Combine(dir, "o.gguf");
            File.WriteAllBytes(bad, [.. Header(64, 172, 5, 8, 4, int.MinValue, 512), .. original.AsSpan(28)]);
            AssertError(Run("convert", "llama2c", bad, "--tokenizer", Tok512, "-o", output), "llama2.c header is not a valid model");
            Assert.False(File.Exists(output));
        }
        finally { Directory.Delete(dir, true); }
    }

    [SharedFact] // 10
    public void An_unloadable_conversion_writes_nothing_and_keeps_an_existing_output()
    {
        string dir = TempDir();
        try
        {
            string odd = Path.Combine(dir, "odd.bin"), output = Path.Combine(dir, "o.gguf");
            var weights = new byte[3306 * 4];
            for (int i = 0; i < 3306; i++) BinaryPrimitives.WriteSingleLittleEndian(weights.AsSpan(i * 4), 0.01f);
            File.WriteAllBytes(odd, [.. Header(6, 4, 1, 2, 2, 512, 4), .. weights]);
            var first = Run("convert", "llama2c", odd, "--tokenizer", Tok512, "-o", output);
            Assert.Equal(1, first.Code);
            Assert.Single(ErrorLines(first.Err));
            Assert.False(File.Exists(output));
            Assert.Single(Directory.GetFiles(dir)); // no temporary left either

            File.WriteAllBytes(output, [1, 2, 3]);
            Assert.Equal(1, Run("convert", "llama2c", odd, "--tokenizer", Tok512, "-o", output).Code);
            Assert.Equal(new byte[] { 1, 2, 3 }, File.ReadAllBytes(output));
            Assert.Equal(2, Directory.GetFiles(dir).Length);
        }
        finally { Directory.Delete(dir, true); }
    }

    [SharedFact] // 10, the good case: the output loads and replaces an existing file
    public void A_conversion_replaces_the_output_only_when_complete()
    {
        string dir = TempDir();
        try
        {
            string output = Path.Combine(dir, "o.gguf");
            File.WriteAllBytes(output, [1, 2, 3]);
            var r = Run("convert", "llama2c", Llama2c, "--tokenizer", Tok512, "-o", output);
            Assert.True(r.Code == 0, r.Err);
            using var m = Model.Load(output);
            Assert.Equal(512, m.Config.VocabSize);
            Assert.Single(Directory.GetFiles(dir));
        }
        finally { Directory.Delete(dir, true); }
    }

    [SharedFact] // 12
    public void With_no_mmap_a_model_survives_its_file_being_truncated()
    {
        string dir = TempDir();
        try
        {
            string copy = Path.Combine(dir, "m.gguf");
            File.Copy(ModelPath, copy);
            var args = new[] { "verify", "-m", copy, "-p", "Once upon a time", "-n", "6", "--temp", "0" };
            var expected = Run(args);
            Assert.Equal(0, expected.Code);

            var o = Options.Parse(Commands.VerifySpec, ["-m", copy, "--no-mmap"]);
            using var model = Commands.LoadModel(o);
            using (var f = new FileStream(copy, FileMode.Open, FileAccess.Write)) f.SetLength(100); // another process truncates it
            using var session = model.CreateSession(64);
            var g = new MicroLm.Generation.Generator(session, MicroLm.SamplingOptions.Greedy) { StopAtEndOfSequence = false };
            var ids = g.Generate(model.Tokenizer.Encode("Once upon a time", true), 6).Select(t => t.Id).ToList();
            using var reference = MicroLm.Model.Load(ModelPath);
            using var s2 = reference.CreateSession(64);
            var g2 = new MicroLm.Generation.Generator(s2, MicroLm.SamplingOptions.Greedy) { StopAtEndOfSequence = false };
            Assert.Equal(g2.Generate(reference.Tokenizer.Encode("Once upon a time", true), 6).Select(t => t.Id), ids);

            // Loading the truncated file (mapped or not) is a clear error, not a crash.
            AssertError(Run("verify", "-m", copy, "-p", "Once", "-n", "2"), "");
            AssertError(Run("verify", "-m", copy, "-p", "Once", "-n", "2", "--no-mmap"), "");
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact] // 13
    public void Inspect_escapes_names_with_newlines_and_terminal_escapes()
    {
        string dir = TempDir();
        try
        {
            string path = Path.Combine(dir, "evil.gguf");
            new GgufWriter()
                .Add("general.architecture", "llama")
                .Add("evil\n\u001b[2J\u001b]0;title\u0007key\u009b31m\u202e", 1u)
                .AddTensor("tensor\r\n\u001b[31mred", MicroLm.Tensors.GgmlType.F32, [4], new byte[16])
                .WriteTo(path);
            var (code, output, err) = Run("inspect", path);
            Assert.Equal(0, code);
            foreach (char c in output)
                Assert.False(c != '\n' && MicroLm.Gguf.GgufValue.IsUnsafeForTerminal(c), $"raw U+{(int)c:X4} in the output");
            Assert.Contains("\"evil\\n\\u001b[2J\\u001b]0;title\\u0007key\\u009b31m\\u202e\" (UInt32) = 1", output, StringComparison.Ordinal);
            Assert.Contains("\"tensor\\r\\n\\u001b[31mred\"", output, StringComparison.Ordinal);
            Assert.Equal(3, output.Split('\n').Count(l => l.StartsWith("  ", StringComparison.Ordinal))); // two keys, one tensor
            Assert.DoesNotContain('\u001b', err);
        }
        finally { Directory.Delete(dir, true); }
    }
}
