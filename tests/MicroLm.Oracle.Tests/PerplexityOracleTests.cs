using MicroLm.Cli;
using MicroLm.Gguf;
using MicroLm.Quantization;
using Xunit.Abstractions;

namespace MicroLm.Oracle.Tests;

/// <summary>`microlm perplexity` and `--kl-divergence` against llama.cpp's numbers on the same files and
/// text: llama.cpp's logits (through LLamaSharp, each chunk evaluated as one batch from an empty cache
/// with BOS first, as its perplexity tool does) put through llama.cpp's formulas, written out here
/// independently in double precision with .NET's libm (as llama.cpp uses its C library's).</summary>
public sealed class PerplexityOracleTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("microlm-ppl-oracle-").FullName;
    private const int Ctx = 256, Chunks = 4;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static string Text()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tests", "data", "quality", "stories260K-samples.txt");
            if (File.Exists(candidate)) return candidate;
        }
        throw new FileNotFoundException("tests/data/quality/stories260K-samples.txt");
    }

    private static (int Code, string Out) Cli(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = CliMain.Run(args, o, e);
        Assert.True(code == 0, e.ToString());
        return (code, o.ToString());
    }

    private static double Number(string text, string label)
    {
        int at = text.LastIndexOf(label, StringComparison.Ordinal);
        Assert.True(at >= 0, $"'{label}' not in output:\n{text}");
        var rest = text[(at + label.Length)..].TrimStart(' ', ':', '=');
        int end = 0;
        while (end < rest.Length && (char.IsDigit(rest[end]) || rest[end] is '.' or '-')) end++;
        return double.Parse(rest[..end], System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>llama.cpp's per-chunk logits of the scored positions (n_ctx/2 … n_ctx−2) and the next tokens.</summary>
    private static List<(float[] Logits, int Next)> LlamaCppScored(string model, int[] tokens, int bos)
    {
        var result = new List<(float[], int)>();
        for (int c = 0; c < Chunks; c++)
        {
            var chunk = tokens.AsSpan(c * Ctx, Ctx).ToArray();
            chunk[0] = bos;
            var logits = LlamaCpp.Logits(model, chunk, Ctx);
            for (int pos = Ctx / 2; pos < Ctx - 1; pos++) result.Add((logits[pos], chunk[pos + 1]));
        }
        return result;
    }

    private static double LogSoftmax(float[] logits, int token, out int argmax)
    {
        float max = logits[0];
        argmax = 0;
        for (int i = 1; i < logits.Length; i++) if (logits[i] > max) { max = logits[i]; argmax = i; }
        double sum = 0;
        foreach (float l in logits) sum += MathF.Exp(l - max);
        return logits[token] - max - System.Math.Log(sum);
    }

    [SharedFact]
    public void Perplexity_and_kl_divergence_agree_with_llama_cpp()
    {
        string f32 = OracleFiles.Shared("gguf/stories260K-F32.gguf");
        string q4 = Path.Combine(_dir, "q4km.gguf"), q8 = Path.Combine(_dir, "q6k.gguf"), kld = Path.Combine(_dir, "base.kld");
        using (var src = GgufFile.Open(f32))
        {
            ModelQuantizer.Quantize(src, QuantPreset.Find("Q4_K_M")!, new()).WriteTo(q4);
            ModelQuantizer.Quantize(src, QuantPreset.Find("Q6_K")!, new()).WriteTo(q8);
        }
        string text = Text();
        string c = Ctx.ToString(System.Globalization.CultureInfo.InvariantCulture), n = Chunks.ToString(System.Globalization.CultureInfo.InvariantCulture);

        // Ours: the F32 model's perplexity, saving its log-probabilities; then each quantized model against them.
        var baseRun = Cli("perplexity", "-m", f32, "-f", text, "-c", c, "--chunks", n, "--kl-divergence-base", kld);
        double oursPpl = Number(baseRun.Out, "Final estimate: PPL");

        int[] tokens = LlamaCpp.Tokenize(f32, File.ReadAllText(text), addBos: true);
        using (var m = MicroLm.Model.Load(f32))
            Assert.Equal(m.Tokenizer.Encode(File.ReadAllText(text), true), tokens);
        var baseScored = LlamaCppScored(f32, tokens, bos: 1);
        double nll = 0;
        foreach (var (logits, next) in baseScored) nll -= LogSoftmax(logits, next, out _);
        double theirPpl = System.Math.Exp(nll / baseScored.Count);
        output.WriteLine($"F32 PPL: ours {oursPpl:F4}, llama.cpp {theirPpl:F6} ({baseScored.Count} tokens)");
        // Logits agree to 1e-5 (docs/oracle.md), so log-probabilities to ~2e-5 and the PPL to ~2e-5 relative;
        // the printed PPL has 4 decimals (±5e-5 at PPL ~4), hence 2e-4 relative.
        Assert.True(System.Math.Abs(oursPpl / theirPpl - 1) < 2e-4, $"F32 PPL {oursPpl} vs llama.cpp {theirPpl}");

        foreach (var (path, name) in new[] { (q4, "Q4_K_M"), (q8, "Q6_K") })
        {
            var run = Cli("perplexity", "-m", path, "--kl-divergence-base", kld, "--kl-divergence");
            double oursKld = Number(run.Out, "Mean    KLD"), oursTop = Number(run.Out, "Same top p"), oursQ = Number(run.Out, "Mean PPL(Q)        ");

            var q = LlamaCppScored(path, tokens, bos: 1);
            double sumKld = 0, sumNll = 0;
            int same = 0;
            for (int i = 0; i < q.Count; i++)
            {
                double lpq = LogSoftmax(q[i].Logits, q[i].Next, out int topQ);
                sumNll -= lpq;
                LogSoftmax(baseScored[i].Logits, 0, out int topBase);
                if (topQ == topBase) same++;
                // KL(base ‖ Q) over the vocabulary, in double with exact base probabilities.
                var b = baseScored[i].Logits;
                float maxB = b.Max(), maxQ = q[i].Logits.Max();
                double zb = b.Sum(l => System.Math.Exp(l - maxB)), zq = q[i].Logits.Sum(l => System.Math.Exp(l - maxQ));
                for (int v = 0; v < b.Length; v++)
                {
                    double lb = b[v] - maxB - System.Math.Log(zb), lq = q[i].Logits[v] - maxQ - System.Math.Log(zq);
                    sumKld += System.Math.Exp(lb) * (lb - lq);
                }
            }
            double theirKld = sumKld / q.Count, theirTop = 100.0 * same / q.Count, theirQ = System.Math.Exp(sumNll / q.Count);
            output.WriteLine($"{name}: PPL(Q) ours {oursQ:F6} llama.cpp {theirQ:F6}; KLD ours {oursKld:F6} llama.cpp {theirKld:F6}; same top ours {oursTop:F3}% llama.cpp {theirTop:F3}%");
            // These files keep stories260K's ffn_down in F16, where llama.cpp rounds the activation to F16 and we
            // do not: their logits differ by up to ~0.3 (docs/oracle.md), so the quantized model's PPL is compared to
            // 2% and the KLD to 25% of its value plus 1e-4 (the base file's 16-bit log-probabilities add ~1e-5).
            Assert.True(System.Math.Abs(oursQ / theirQ - 1) < 0.02, $"{name} PPL(Q) {oursQ} vs llama.cpp {theirQ}");
            Assert.True(System.Math.Abs(oursKld - theirKld) < 0.25 * theirKld + 1e-4, $"{name} KLD {oursKld} vs llama.cpp {theirKld}");
            Assert.True(System.Math.Abs(oursTop - theirTop) < 3.0, $"{name} same-top {oursTop}% vs llama.cpp {theirTop}%");
        }
    }

    [SharedFact]
    public void Same_bits_for_any_thread_count_and_batch()
    {
        string f32 = OracleFiles.Shared("gguf/stories260K-F32.gguf");
        string text = Text();
        var a = Cli("perplexity", "-m", f32, "-f", text, "-c", "64", "--chunks", "3", "-t", "1", "-b", "64").Out;
        var b = Cli("perplexity", "-m", f32, "-f", text, "-c", "64", "--chunks", "3", "-t", "2", "-b", "17").Out;
        Assert.Equal(a, b);
    }
}
