using MicroLm.Conversion;
using MicroLm.Synthetic;
using Xunit.Abstractions;

namespace MicroLm.Oracle.Tests;

/// <summary>`microlm convert hf` output read by llama.cpp: synthetic Hugging Face checkpoints (transformers' layout,
/// F32 and F16 safetensors, tied and untied, GQA, Pythia's extra buffers, Falcon-H1 with its µP multipliers) are
/// converted by our converter; llama.cpp must load the GGUF, tokenize the prompt text to the ids we give, and compute
/// the logits we compute (prompt as one batch, then 16 greedy steps one at a time).</summary>
public class HfConvertOracleTests(OracleFiles files, ITestOutputHelper output) : IClassFixture<OracleFiles>
{
    private const string PromptText = "Once upon a time, there was a little girl named Lily.";
    private const int Generate = 16;

    private static string Vocab(string name) => OracleFiles.SharedFile($"tokenizer-vectors/ggml-vocab-{name}.gguf");

    internal static SyntheticHfOptions Case(string name) => name switch
    {
        "llama-gqa-untied-f32" => new() { Family = "llama", TokenizerGguf = Vocab("llama-spm"), Heads = 4, KvHeads = 2, Tied = false, Shards = 2, Hidden = 160, Layers = 3, Seed = 61 },
        "llama-mha-tied-f32" => new() { Family = "llama", TokenizerGguf = Vocab("llama-spm"), Heads = 8, KvHeads = 8, Tied = true, Seed = 62 },
        "llama-mqa-tied-f16" => new() { Family = "llama", TokenizerGguf = Vocab("llama-spm"), Heads = 4, KvHeads = 1, Tied = true, DType = "F16", Seed = 63 },
        "gptneox-parallel-buffers-f32" => new() { Family = "gptneox", TokenizerGguf = Vocab("mpt"), ExtraBuffers = true, ParallelResidual = true, Seed = 64 },
        "gptneox-sequential-f32" => new() { Family = "gptneox", TokenizerGguf = Vocab("mpt"), ParallelResidual = false, RotaryPct = 0.5f, Seed = 65 },
        "gptneox-parallel-buffers-f16" => new() { Family = "gptneox", TokenizerGguf = Vocab("mpt"), ExtraBuffers = true, DType = "F16", Shards = 3, Seed = 66 },
        "falconh1-gqa-2groups-f32" => new() { Family = "falconh1", TokenizerGguf = Vocab("gpt-2"), Layers = 3, Heads = 4, KvHeads = 2, Hidden = 160, Seed = 67 },
        "falconh1-mqa-tied-f16" => new()
        {
            Family = "falconh1", TokenizerGguf = Vocab("gpt-2"), Heads = 4, KvHeads = 1, HeadDim = 24, SsmInner = 96, SsmHeadDim = 8, SsmGroups = 1,
            SsmState = 8, ConvKernel = 3, SsmNorm = false, Tied = true, RopeTheta = 10000f, DType = "F16", Seed = 68,
        },
        _ => throw new ArgumentException(name),
    };

    /// <summary>How close llama.cpp's logits must be to ours (logits are O(1)–O(10); reasons as in docs/oracle.md).</summary>
    public enum ConvertedTolerance
    {
        /// <summary>1e-4: the same operations on the same F32 weights; only summation order and llama.cpp's own
        /// exp/SiLU differ (float rounding carried through a few layers).</summary>
        F32,
        /// <summary>2e-2, or 1e-3 of the largest |logit| when that is larger: llama.cpp rounds every activation to F16
        /// (2^-11 ≈ 4.9e-4 relative) before an F16 dot; we keep F32. The error is relative, so it scales with the
        /// logits: a tied classifier over a 0.5σ embedding gives |logit| up to ~24 (measured 2.2e-2 there, 9e-4 of it).</summary>
        F16,
        /// <summary>1e-2: GPT-NeoX's GELU is an F16 table in llama.cpp's CPU backend (2^-11 relative in every
        /// feed-forward activation); the LogitOracleTests' GeluF16Table.</summary>
        GeluF16Table,
        /// <summary>3e-2: F16 weights and llama.cpp's F16 GELU table together.</summary>
        F16WithGeluTable,
    }

    [SharedTheory]
    [InlineData("llama-gqa-untied-f32", ConvertedTolerance.F32)]
    [InlineData("llama-mha-tied-f32", ConvertedTolerance.F32)]
    [InlineData("llama-mqa-tied-f16", ConvertedTolerance.F16)]
    [InlineData("gptneox-parallel-buffers-f32", ConvertedTolerance.GeluF16Table)]
    [InlineData("gptneox-sequential-f32", ConvertedTolerance.GeluF16Table)]
    [InlineData("gptneox-parallel-buffers-f16", ConvertedTolerance.F16WithGeluTable)]
    [InlineData("falconh1-gqa-2groups-f32", ConvertedTolerance.F32)]
    [InlineData("falconh1-mqa-tied-f16", ConvertedTolerance.F16)]
    public void Converted_checkpoint_agrees_with_llama_cpp(string name, ConvertedTolerance tolerance)
    {
        var o = Case(name);
        string dir = Path.Combine(files.Dir, "hf-" + name), gguf = dir + ".gguf";
        SyntheticHf.Write(dir, o);
        HfConverter.Convert(dir, gguf, "auto");

        int[] prompt;
        bool bos;
        using (var m = Model.Load(gguf)) { bos = m.Tokenizer.AddBos; prompt = m.Tokenizer.Encode(PromptText, addBos: bos).ToArray(); }
        Assert.Equal(prompt, LlamaCpp.Tokenize(gguf, PromptText, bos));

        var (tokens, ours) = OurModel.GreedyRun(gguf, prompt, Generate);
        var c = new LogitComparison(ours, LlamaCpp.Logits(gguf, tokens, prompt.Length), output);
        var flips = new List<string>();
        for (int p = 0; p < tokens.Length; p++)
        {
            if (c.ArgMaxAgrees(p)) continue;
            // A different choice is only acceptable between near-tied logits: our gap between the two tokens is
            // within twice this position's difference.
            int a = OurModel.ArgMax(ours[p]), b = OurModel.ArgMax(c.Theirs[p]);
            double gap = ours[p][a] - ours[p][b];
            flips.Add($"position {p}: {a} vs {b}, gap {gap:E2}");
            Assert.True(gap <= 2 * c.PositionMax[p], $"argmax differs at position {p} ({a} vs {b}) by a gap of {gap:E2}, more than 2 × |Δ| {c.PositionMax[p]:E2}");
        }
        double limit = tolerance switch
        {
            ConvertedTolerance.F32 => 1e-4,
            ConvertedTolerance.F16 => System.Math.Max(2e-2, 1e-3 * c.MaxAbsLogit),
            ConvertedTolerance.GeluF16Table => 1e-2,
            ConvertedTolerance.F16WithGeluTable => 3e-2,
            _ => throw new ArgumentOutOfRangeException(nameof(tolerance)),
        };
        output.WriteLine($"{name}: prompt {prompt.Length} ids (llama.cpp tokenizes the same), max |Δlogit| {c.MaxAbs:E2} (position {c.Worst}), " +
                         $"max |logit| {c.MaxAbsLogit:F2}, argmax agrees at {c.Agree}/{tokens.Length}{(flips.Count > 0 ? " (near ties: " + string.Join("; ", flips) + ")" : "")}; tolerance {tolerance} = {limit:G2}");
        Assert.True(c.MaxAbs <= limit, $"max |Δlogit| {c.MaxAbs:E3} at position {c.Worst} exceeds {limit:G2}");
        // Greedy tokens identical wherever llama.cpp rounds no activation (F32 weights, no GELU table).
        if (tolerance == ConvertedTolerance.F32) Assert.Equal(tokens.Length, c.Agree);
    }
}
