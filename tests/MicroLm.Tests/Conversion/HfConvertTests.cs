using Xunit.Abstractions;
using MicroLm.Cli;
using MicroLm.Conversion;
using MicroLm.Models;
using MicroLm.Synthetic;

namespace MicroLm.Tests.Conversion;

/// <summary>Synthetic Hugging Face checkpoints (written here in transformers' layout), converted by
/// `convert hf`, run by the runtime and compared with a float64 reference of transformers' semantics.</summary>
public sealed class HfConvertTests(ITestOutputHelper log) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("microlm-hf-").FullName;
    public void Dispose() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    internal static string Gpt2Vocab => SharedData.Path("tokenizer-vectors", "ggml-vocab-gpt-2.gguf");
    internal static string SpmVocab => SharedData.Path("tokenizer-vectors", "ggml-vocab-llama-spm.gguf");
    internal static string NeoxVocab => SharedData.Path("tokenizer-vectors", "ggml-vocab-mpt.gguf");

    /// <summary>Prompt ids (any ids of the vocabulary), longer than the GPT-Neo window.</summary>
    internal static int[] Ids(int n, int vocab, ulong seed)
    {
        var r = new SyntheticRandom(seed);
        return Enumerable.Range(0, n).Select(_ => (int)(r.NextUInt64() % (ulong)vocab)).ToArray();
    }

    private (SyntheticHfCheckpoint Ck, string Gguf) Make(string name, SyntheticHfOptions o, string outType = "auto")
    {
        var ck = SyntheticHf.Write(Path.Combine(_dir, name), o);
        string gguf = Path.Combine(_dir, name + ".gguf");
        HfConverter.Convert(ck.Directory, gguf, outType);
        return (ck, gguf);
    }

    /// <summary>Largest |runtime − reference| over every logit of every position, and whether greedy picks agree.</summary>
    internal static (double MaxDiff, bool SameArgmax) Compare(string gguf, double[][] reference, int[] ids, int threads = 1, int batch = 32)
    {
        using var model = Model.Load(gguf);
        using var s = model.CreateSession(contextLength: ids.Length, threads: threads, maxBatch: batch);
        double max = 0; bool same = true;
        s.Evaluate(ids, onLogits: (pos, _, logits) =>
        {
            var r = reference[pos];
            for (int i = 0; i < r.Length; i++) max = System.Math.Max(max, System.Math.Abs(logits[i] - r[i]));
            same &= Argmax(logits) == Array.IndexOf(r, r.Max());
        });
        return (max, same);
    }

    private static int Argmax(ReadOnlySpan<float> x) { int b = 0; for (int i = 1; i < x.Length; i++) if (x[i] > x[b]) b = i; return b; }

    /// <summary>Greedy continuation: the runtime's tokens equal the reference's argmax chain.</summary>
    private static void GreedyAgrees(string gguf, HfReference reference, int[] prompt, int steps)
    {
        using var model = Model.Load(gguf);
        using var s = model.CreateSession(contextLength: prompt.Length + steps);
        var ids = prompt.ToList();
        var logits = s.Evaluate(prompt).ToArray();
        var one = new int[1];
        for (int i = 0; i < steps; i++)
        {
            int next = Argmax(logits);
            var r = reference.Logits(ids.ToArray())[^1];
            Assert.Equal(Array.IndexOf(r, r.Max()), next);
            ids.Add(next);
            one[0] = next;
            logits = s.Evaluate(one).ToArray();
        }
    }

    // F32: the runtime keeps every value in F32 with F32 sums; over these shapes (d ≤ 64, ≤ 4 layers) the
    // rounding of ~10^3 float additions per logit stays below 1e-4 of logits of magnitude ~1–10.
    private const double F32Tolerance = 1e-4;

    [SharedFact]
    public void GptNeo_F32_with_prompt_longer_than_window_matches_float64_reference()
    {
        var o = new SyntheticHfOptions { Family = "gptneo", TokenizerGguf = Gpt2Vocab, Window = 8, Layers = 4, ContextLength = 64, Seed = 3 };
        var (ck, gguf) = Make("neo", o, "f32");
        var ids = Ids(40, 50257, 5);
        var reference = new HfReference(ck, o);
        var (max, same) = Compare(gguf, reference.Logits(ids), ids);
        log.WriteLine($"max |diff| {max:E3}");
        Assert.True(max < F32Tolerance, $"max |diff| {max}");
        Assert.True(same);
        GreedyAgrees(gguf, reference, ids[..20], 4);
    }

    [SharedFact]
    public void GptNeo_untied_sharded_with_buffers_matches_reference()
    {
        var o = new SyntheticHfOptions
        {
            Family = "gptneo", TokenizerGguf = Gpt2Vocab, Window = 5, Layers = 3, Dim = 48, Heads = 3, Hidden = 96,
            AttentionPattern = ["local"], Tied = false, Shards = 3, ExtraBuffers = true, ContextLength = 32, Seed = 9,
        };
        var (ck, gguf) = Make("neo-untied", o, "f32");
        var ids = Ids(20, 50257, 6);
        var (max, same) = Compare(gguf, new HfReference(ck, o).Logits(ids), ids);
        log.WriteLine($"max |diff| {max:E3}");
        Assert.True(max < F32Tolerance, $"max |diff| {max}");
        Assert.True(same);
    }

    /// <summary>F16 checkpoint kept F16: the weights are the same values in the reference and the file, and the
    /// runtime widens F16 weights to F32 before its F32 dot products, so the F32 tolerance holds (measured 1.4e-5).</summary>
    [SharedFact]
    public void GptNeo_F16_matches_reference_within_F16_tolerance()
    {
        var o = new SyntheticHfOptions { Family = "gptneo", TokenizerGguf = Gpt2Vocab, Window = 8, DType = "F16", Seed = 4 };
        var (ck, gguf) = Make("neo-f16", o, "auto");
        using (var m = Model.Load(gguf)) Assert.Equal("F16", m.File.FindTensor("blk.0.attn_q.weight")!.Type.Name);
        var ids = Ids(24, 50257, 7);
        var (max, same) = Compare(gguf, new HfReference(ck, o).Logits(ids), ids);
        log.WriteLine($"max |diff| {max:E3}");
        Assert.True(max < F32Tolerance, $"max |diff| {max}");
        Assert.True(same);
    }

    /// <summary>An F32 checkpoint written as F16 (--outtype f16): against the reference of the same weights
    /// rounded to F16 (1-D tensors stay F32, as the converter keeps them) the F32 tolerance holds; against the
    /// unrounded F32 model the logits move by the rounding itself (relative 2^-11 per weight), which this
    /// shape measures at ~4e-2 — the tolerance F16 output needs against an F32 reference.</summary>
    [SharedFact]
    public void GptNeo_F32_checkpoint_as_F16_file_matches_the_rounded_reference()
    {
        var o = new SyntheticHfOptions { Family = "gptneo", TokenizerGguf = Gpt2Vocab, Window = 8, Seed = 8 };
        var (ck, gguf) = Make("neo-to-f16", o, "f16");
        var rounded = new SyntheticHfCheckpoint
        {
            Directory = ck.Directory,
            Weights = ck.Weights.ToDictionary(kv => kv.Key, kv => kv.Value.Shape.Length == 2
                ? (kv.Value.Shape, kv.Value.Values.Select(v => (float)(Half)v).ToArray()) : kv.Value),
        };
        var ids = Ids(24, 50257, 9);
        var (max, same) = Compare(gguf, new HfReference(rounded, o).Logits(ids), ids);
        var (maxF32, _) = Compare(gguf, new HfReference(ck, o).Logits(ids), ids);
        log.WriteLine($"max |diff| vs rounded reference {max:E3}, vs F32 reference {maxF32:E3}");
        Assert.True(max < F32Tolerance, $"max |diff| {max}");
        Assert.True(same);
        Assert.True(maxF32 < 1e-1, $"F16 rounding moved logits by {maxF32}");
    }

    [SharedFact]
    public void GptNeo_threads_and_batches_give_identical_bits_across_the_window_edge()
    {
        var o = new SyntheticHfOptions { Family = "gptneo", TokenizerGguf = Gpt2Vocab, Window = 6, ContextLength = 64, Seed = 11 };
        var (_, gguf) = Make("neo-inv", o, "q8_0");
        using var model = Model.Load(gguf);
        var ids = Ids(30, 50257, 12);
        byte[] Run(int threads, int batch)
        {
            using var s = model.CreateSession(contextLength: 40, threads: threads, maxBatch: batch);
            var bytes = new List<byte>();
            s.Evaluate(ids, onLogits: (_, _, l) => bytes.AddRange(System.Runtime.InteropServices.MemoryMarshal.AsBytes(l).ToArray()));
            // Decoding on past the window's edge one token at a time.
            for (int i = 0; i < 5; i++) bytes.AddRange(System.Runtime.InteropServices.MemoryMarshal.AsBytes(s.Evaluate(ids.AsSpan(i, 1))).ToArray());
            return bytes.ToArray();
        }
        var expected = Run(1, 1);
        foreach (var (t, b) in new[] { (1, 32), (2, 3), (3, 7), (2, 30), (7, 5) })
            Assert.True(expected.AsSpan().SequenceEqual(Run(t, b)), $"threads {t} batch {b}");
    }

    [SharedFact]
    public void Session_reset_reproduces_and_memory_counts_the_window_ring()
    {
        var o = new SyntheticHfOptions { Family = "gptneo", TokenizerGguf = Gpt2Vocab, Window = 8, ContextLength = 128, Seed = 2 };
        var (_, gguf) = Make("neo-reset", o, "f32");
        using var model = Model.Load(gguf);
        using var s = model.CreateSession(contextLength: 128, maxBatch: 4);
        // 2 global layers hold 128 positions; 2 local layers a ring of 8 + 4 − 1 = 11, mirrored.
        long perRow = 2L * o.Dim * sizeof(float);
        Assert.Equal(2 * 128 * perRow + 2 * 22 * perRow, s.MemoryBytes);
        Assert.Equal(s.MemoryBytes, model.Config.KvCacheBytes(128, 4, maxBatch: 4));
        var ids = Ids(30, 50257, 1);
        var first = s.Evaluate(ids).ToArray();
        s.Reset();
        Assert.Equal(first, s.Evaluate(ids).ToArray());
    }

    /// <summary>TinyStories-1M's real configuration (SyntheticHf.TinyStories1M: d 64, 8 layers alternating global and
    /// local, window 256, context 2048, intermediate_size null) converted and run on a 300-token prompt, so the local
    /// layers' window is crossed, against the float64 reference; then greedy steps.</summary>
    [SharedFact]
    public void TinyStories_1M_configuration_converts_and_runs_past_its_window()
    {
        var o = SyntheticHf.TinyStories1M(Gpt2Vocab, seed: 71);
        var (ck, gguf) = Make("ts1m", o, "auto");
        using (var m = Model.Load(gguf))
        {
            Assert.Equal(256, m.Config.HiddenDim);
            Assert.Equal([0, 256, 0, 256, 0, 256, 0, 256], m.Config.AttentionWindows.ToArray());
        }
        var ids = Ids(300, 50257, 72);
        var reference = new HfReference(ck, o);
        var (max, same) = Compare(gguf, reference.Logits(ids), ids, batch: 64);
        log.WriteLine($"TinyStories-1M shape, 300 positions: max |diff| {max:E3}");
        Assert.True(max < F32Tolerance, $"max |diff| {max}");
        Assert.True(same);
    }

    /// <summary>TinyStories-33M's real configuration (d 768, 4 layers, 16 heads, window 256, context 2048): converted,
    /// run on a short prompt against the float64 reference, greedy steps identical. Embedding std 0.05 keeps the tied
    /// classifier's logits O(1–10) as a trained model's are; with the default 0.5 they reach ~60 over 768 dimensions
    /// and the same F32 rounding (relative ~1e-6) measured 8.4e-5 absolute.</summary>
    [SharedFact]
    public void TinyStories_33M_configuration_converts_and_runs()
    {
        var o = SyntheticHf.TinyStories33M(Gpt2Vocab, seed: 73) with { EmbeddingScale = 0.05f };
        var (ck, gguf) = Make("ts33m", o, "auto");
        using (var m = Model.Load(gguf)) Assert.Equal(3072, m.Config.HiddenDim);
        var ids = Ids(8, 50257, 74);
        var reference = new HfReference(ck, o);
        var (max, same) = Compare(gguf, reference.Logits(ids), ids);
        log.WriteLine($"TinyStories-33M shape: max |diff| {max:E3}");
        Assert.True(max < F32Tolerance, $"max |diff| {max}");
        Assert.True(same);
        GreedyAgrees(gguf, reference, ids, 2);
    }

    /// <summary>`inspect`'s memory envelope counts a local layer's ring, not the whole context, and says so.</summary>
    [SharedFact]
    public void Inspect_shows_the_windowed_KV_cache_size()
    {
        var o = new SyntheticHfOptions { Family = "gptneo", TokenizerGguf = Gpt2Vocab, Window = 8, Layers = 4, ContextLength = 128, Seed = 2 };
        var (_, gguf) = Make("neo-inspect", o, "f32");
        var stdout = new StringWriter(); var stderr = new StringWriter();
        Assert.Equal(0, CliMain.Run(["inspect", gguf], stdout, stderr));
        // 2 global layers × 128 rows + 2 local layers × a ring of 8 + 32 − 1 = 39 slots, stored twice.
        long perRow = 2L * o.Dim * sizeof(float), expected = 2 * 128 * perRow + 2 * 78 * perRow;
        Assert.Contains($"KV cache F32   {expected,14:N0} bytes", stdout.ToString());
        Assert.Contains("(2 of 4 layers local: window 8, 78 rows each at batch 32; 2 global: 128 rows)", stdout.ToString());
        stdout = new StringWriter();
        Assert.Equal(0, CliMain.Run(["inspect", gguf, "--json"], stdout, stderr));
        Assert.Contains($"\"kv_cache_f32\": {expected}", stdout.ToString());
        Assert.Contains("\"sliding_window_layers\": 2", stdout.ToString());
    }

    [SharedFact]
    public void Llama_F32_GQA_untied_sharded_matches_reference()
    {
        var o = new SyntheticHfOptions { Family = "llama", TokenizerGguf = SpmVocab, Heads = 4, KvHeads = 2, Tied = false, Shards = 2, Seed = 21, Hidden = 160 };
        var (ck, gguf) = Make("llama", o, "f32");
        var ids = Ids(24, 32000, 22);
        var (max, same) = Compare(gguf, new HfReference(ck, o).Logits(ids), ids);
        log.WriteLine($"max |diff| {max:E3}");
        Assert.True(max < F32Tolerance, $"max |diff| {max}");
        Assert.True(same);
    }

    [SharedFact]
    public void Llama_BF16_tied_converts_to_bf16_and_matches_reference()
    {
        var o = new SyntheticHfOptions { Family = "llama", TokenizerGguf = SpmVocab, Heads = 8, KvHeads = 8, Tied = true, DType = "BF16", Seed = 23 };
        var (ck, gguf) = Make("llama-bf16", o, "auto");
        using (var m = Model.Load(gguf))
        {
            Assert.Equal("BF16", m.File.FindTensor("blk.0.attn_q.weight")!.Type.Name);
            Assert.Null(m.File.FindTensor("output.weight"));
        }
        var ids = Ids(16, 32000, 24);
        var (max, same) = Compare(gguf, new HfReference(ck, o).Logits(ids), ids);
        log.WriteLine($"max |diff| {max:E3}");
        Assert.True(max < F32Tolerance, $"max |diff| {max}"); // BF16 weights widened exactly to F32 (as F16 above)
        Assert.True(same);
    }

    [SharedTheory]
    [InlineData(true)]
    [InlineData(false)]
    public void GptNeoX_F32_with_Pythia_buffers_matches_reference(bool parallel)
    {
        var o = new SyntheticHfOptions { Family = "gptneox", TokenizerGguf = NeoxVocab, ParallelResidual = parallel, ExtraBuffers = true, Seed = 31 };
        var (ck, gguf) = Make("neox" + parallel, o, "f32");
        var ids = Ids(20, 50432, 32);
        var (max, same) = Compare(gguf, new HfReference(ck, o).Logits(ids), ids);
        log.WriteLine($"max |diff| {max:E3}");
        Assert.True(max < F32Tolerance, $"max |diff| {max}");
        Assert.True(same);
    }

    /// <summary>The user's path end to end: `microlm convert hf DIR -o OUT.gguf`, then `microlm verify -m OUT.gguf
    /// --ids ... -n N --dump-logits`; every dumped position's logits against the float64 reference of the sequence
    /// the trace lists (the prompt, then verify's greedy tokens), and each greedy token the reference's argmax.</summary>
    private (double MaxDiff, int Positions) ConvertAndVerifyWithCli(SyntheticHfCheckpoint ck, SyntheticHfOptions o, int[] prompt, int n, string outType = "f32")
    {
        string gguf = Path.Combine(_dir, Path.GetFileName(ck.Directory) + "-cli.gguf"), dump = gguf + ".logits";
        var stdout = new StringWriter(); var stderr = new StringWriter();
        Assert.True(CliMain.Run(["convert", "hf", ck.Directory, "-o", gguf, "--outtype", outType], stdout, stderr) == 0, stderr.ToString());
        using (var m = Model.Load(gguf)) // auto keeps the checkpoint's 16-bit type
            Assert.Equal(outType == "auto" ? o.DType : outType.ToUpperInvariant(), m.File.Tensors.First(t => t.Shape.Length == 2).Type.Name);
        stdout = new StringWriter(); stderr = new StringWriter();
        int code = CliMain.Run(["verify", "-m", gguf, "--temp", "0", "--ids", string.Join(' ', prompt), "-n", n.ToString(System.Globalization.CultureInfo.InvariantCulture), "--dump-logits", dump], stdout, stderr);
        Assert.True(code == 0, stderr.ToString());
        var lines = stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith("trace", StringComparison.Ordinal)).ToArray();
        var tokens = lines.Select(l => int.Parse(l.Split('\t')[1], System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(prompt, tokens[..prompt.Length]);
        Assert.Equal(prompt.Length + n, tokens.Length);
        var logits = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(dump)).ToArray();
        var reference = new HfReference(ck, o).Logits(tokens);
        int vocab = reference[0].Length;
        Assert.Equal(tokens.Length * vocab, logits.Length);
        double max = 0;
        for (int p = 0; p < tokens.Length; p++)
        {
            var row = logits.AsSpan(p * vocab, vocab);
            for (int i = 0; i < vocab; i++) max = System.Math.Max(max, System.Math.Abs(row[i] - reference[p][i]));
            if (p >= prompt.Length - 1 && p + 1 < tokens.Length)
                Assert.True(tokens[p + 1] == Array.IndexOf(reference[p], reference[p].Max()), $"greedy token at position {p + 1}");
        }
        return (max, tokens.Length);
    }

    /// <summary>F16 checkpoints are converted with --outtype auto (kept F16): the runtime widens F16 weights exactly
    /// and sums in F32, so against the reference of the same (F16-valued) weights the F32 tolerance holds.</summary>
    [SharedTheory]
    [InlineData("gptneo", "F32")]
    [InlineData("gptneo", "F16")]
    [InlineData("llama", "F32")]
    [InlineData("llama", "F16")]
    [InlineData("gptneox", "F32")]
    [InlineData("gptneox", "F16")]
    [InlineData("falconh1", "F32")]
    public void Cli_convert_then_verify_ids_matches_float64_reference(string family, string dtype)
    {
        var o = family switch
        {
            // untied, window 6 < the 20 positions
            "gptneo" => new SyntheticHfOptions { Family = family, TokenizerGguf = Gpt2Vocab, Window = 6, Layers = 2, ContextLength = 64, Tied = dtype == "F16", Seed = 41 },
            // MQA; untied as F32, tied as F16
            "llama" => new SyntheticHfOptions { Family = family, TokenizerGguf = SpmVocab, Heads = 4, KvHeads = dtype == "F16" ? 2 : 1, Tied = dtype == "F16", Layers = 2, Seed = 42, Hidden = 96 },
            "gptneox" => new SyntheticHfOptions { Family = family, TokenizerGguf = NeoxVocab, Layers = 2, ExtraBuffers = true, Seed = 43 },
            _ => new SyntheticHfOptions { Family = family, TokenizerGguf = Gpt2Vocab, Layers = 2, Heads = 4, KvHeads = 2, Hidden = 96, Seed = 44 },
        };
        o = o with { DType = dtype };
        var ck = SyntheticHf.Write(Path.Combine(_dir, $"cli-{family}-{dtype}"), o);
        int vocab; using (var v = MicroLm.Gguf.GgufFile.Open(o.TokenizerGguf)) vocab = (int)v.Get("tokenizer.ggml.tokens").Count;
        var (max, positions) = ConvertAndVerifyWithCli(ck, o, Ids(14, vocab, 45), 6, dtype == "F16" ? "auto" : "f32");
        log.WriteLine($"{family} {dtype}: max |diff| {max:E3} over {positions} positions");
        Assert.True(max < F32Tolerance, $"max |diff| {max}");
    }

    private static SyntheticHfOptions FalconH1Options(ulong seed) =>
        new() { Family = "falconh1", TokenizerGguf = Gpt2Vocab, Layers = 3, Heads = 4, KvHeads = 2, Hidden = 160, ContextLength = 64, Seed = seed };

    /// <summary>Falcon-H1 with every µP multiplier distinct from 1 (folded into the weights by the converter, applied
    /// where transformers applies them by the reference): GQA, two SSM groups with grouped RMSNorm, untied.</summary>
    [SharedFact]
    public void FalconH1_F32_with_multipliers_matches_float64_reference()
    {
        var o = FalconH1Options(51);
        var (ck, gguf) = Make("h1", o, "f32");
        using (var m = Model.Load(gguf))
        {
            Assert.Equal("falcon-h1", m.Config.Architecture);
            Assert.NotNull(m.File.FindTensor("blk.0.ffn_norm")); // the spelling llama.cpp's loader asks for
            Assert.Equal("F32", m.File.FindTensor("blk.0.ssm_conv1d.weight")!.Type.Name);
        }
        var ids = Ids(24, 50257, 52);
        var reference = new HfReference(ck, o);
        var (max, same) = Compare(gguf, reference.Logits(ids), ids);
        log.WriteLine($"max |diff| {max:E3}");
        Assert.True(max < F32Tolerance, $"max |diff| {max}");
        Assert.True(same);
        GreedyAgrees(gguf, reference, ids[..12], 4);
    }

    /// <summary>Another shape: multi-query attention with head_dim ≠ hidden / heads, one SSM group, no mamba norm,
    /// kernel 3, tied classifier (written as its own tensor: the embedding multiplier is not the classifier's),
    /// rope base 10^4, sharded F16 checkpoint. Written as F32 the F16 weights widen exactly and each folded product
    /// rounds once to F32, so the F32 tolerance holds. Kept F16 (auto), each folded product rounds to F16 (2^-11
    /// relative per weight, as llama.cpp's converter multiplies in the checkpoint's dtype): measured 2.0e-2 against
    /// the reference of the unrounded products, hence 5e-2 for that file, with identical greedy choices.</summary>
    [SharedFact]
    public void FalconH1_tied_MQA_one_group_F16_sharded_matches_reference()
    {
        var o = FalconH1Options(53) with
        {
            Heads = 4, KvHeads = 1, HeadDim = 24, SsmInner = 96, SsmHeadDim = 8, SsmGroups = 1, SsmState = 8, ConvKernel = 3,
            SsmNorm = false, Tied = true, RopeTheta = 10000f, Shards = 2, DType = "F16",
        };
        var (ck, gguf) = Make("h1-tied", o, "f32");
        using (var m = Model.Load(gguf))
        {
            Assert.NotNull(m.File.FindTensor("output.weight"));
            Assert.Null(m.File.FindTensor("blk.0.ssm_norm.weight"));
        }
        var ids = Ids(20, 50257, 54);
        var reference = new HfReference(ck, o).Logits(ids);
        var (max, same) = Compare(gguf, reference, ids);
        log.WriteLine($"as F32: max |diff| {max:E3}");
        Assert.True(max < F32Tolerance, $"max |diff| {max}");
        Assert.True(same);

        string f16 = Path.Combine(_dir, "h1-tied-f16.gguf");
        HfConverter.Convert(ck.Directory, f16, "auto");
        using (var m = Model.Load(f16)) Assert.Equal("F16", m.File.FindTensor("blk.0.ssm_in.weight")!.Type.Name);
        var (max16, same16) = Compare(f16, reference, ids);
        log.WriteLine($"as F16: max |diff| {max16:E3}");
        Assert.True(max16 < 5e-2, $"max |diff| {max16}");
        Assert.True(same16);
    }

    /// <summary>Multipliers all 1 and a tied classifier: nothing to fold, so the classifier stays the embedding.</summary>
    [SharedFact]
    public void FalconH1_without_multipliers_keeps_the_tied_embedding()
    {
        var o = FalconH1Options(55) with
        {
            Tied = true, EmbeddingMultiplier = 1, LmHeadMultiplier = 1, AttentionInMultiplier = 1, AttentionOutMultiplier = 1,
            KeyMultiplier = 1, SsmInMultiplier = 1, SsmOutMultiplier = 1, MlpMultipliers = [1, 1], SsmMultipliers = [1, 1, 1, 1, 1],
        };
        var (ck, gguf) = Make("h1-plain", o, "f32");
        using (var m = Model.Load(gguf)) Assert.Null(m.File.FindTensor("output.weight"));
        var ids = Ids(16, 50257, 56);
        var (max, same) = Compare(gguf, new HfReference(ck, o).Logits(ids), ids);
        log.WriteLine($"max |diff| {max:E3}");
        Assert.True(max < F32Tolerance, $"max |diff| {max}");
        Assert.True(same);
    }

    private string SmallH1(string name, Func<SyntheticHfOptions, SyntheticHfOptions>? change = null)
    {
        var o = FalconH1Options(57) with { Layers = 1, Dim = 32, Heads = 2, KvHeads = 1, Hidden = 64, SsmInner = 32, SsmHeadDim = 8, SsmState = 4, ContextLength = 16 };
        return SyntheticHf.Write(Path.Combine(_dir, name), change?.Invoke(o) ?? o).Directory;
    }

    private static void EditConfig(string dir, string from, string to)
    {
        string cfg = Path.Combine(dir, "config.json"), text = File.ReadAllText(cfg);
        Assert.Contains(from, text, StringComparison.Ordinal);
        File.WriteAllText(cfg, text.Replace(from, to, StringComparison.Ordinal));
    }

    /// <summary>A checkpoint with only PyTorch's pickle (pytorch_model.bin) is refused by name, never unpickled.</summary>
    [SharedFact]
    public void Pickle_only_checkpoint_fails_cleanly()
    {
        string dir = Small("pickle");
        File.Move(Path.Combine(dir, "model.safetensors"), Path.Combine(dir, "pytorch_model.bin"));
        AssertFails(dir, "only safetensors checkpoints are read");
    }

    [SharedFact]
    public void FalconH1_missing_ssm_tensor_fails_cleanly() =>
        AssertFails(SmallH1("h1-missing", o => o with { Omit = new HashSet<string> { "model.layers.0.mamba.A_log" } }), "missing tensor 'model.layers.0.mamba.A_log'");

    [SharedFact]
    public void FalconH1_inner_size_disagreeing_with_tensors_fails_cleanly()
    {
        string dir = SmallH1("h1-inner");
        EditConfig(dir, "\"mamba_d_ssm\": 32", "\"mamba_d_ssm\": 48");
        EditConfig(dir, "\"mamba_n_heads\": 4", "\"mamba_n_heads\": 6");
        AssertFails(dir, "config.json implies");
    }

    [SharedFact]
    public void FalconH1_inner_size_not_a_multiple_of_head_size_fails_cleanly()
    {
        string dir = SmallH1("h1-headdim");
        EditConfig(dir, "\"mamba_d_head\": 8", "\"mamba_d_head\": 12");
        AssertFails(dir, "mamba_d_ssm 32 is not a multiple of mamba_d_head 12");
    }

    [SharedFact]
    public void FalconH1_head_count_disagreeing_fails_cleanly()
    {
        string dir = SmallH1("h1-heads");
        EditConfig(dir, "\"mamba_n_heads\": 4", "\"mamba_n_heads\": 8");
        AssertFails(dir, "mamba_n_heads 8 disagrees");
    }

    [SharedFact]
    public void FalconH1_group_count_not_dividing_heads_fails_cleanly()
    {
        string dir = SmallH1("h1-groups");
        EditConfig(dir, "\"mamba_n_groups\": 2", "\"mamba_n_groups\": 3");
        AssertFails(dir, "not a multiple of mamba_n_groups 3");
    }

    [SharedFact]
    public void FalconH1_group_count_disagreeing_with_tensors_fails_cleanly()
    {
        string dir = SmallH1("h1-groups4");
        EditConfig(dir, "\"mamba_n_groups\": 2", "\"mamba_n_groups\": 4");
        AssertFails(dir, "config.json implies");
    }

    // Bad checkpoints: one error line from the CLI, exit code 1, no output file (nor its temporary).
    private void AssertFails(string dir, string expected)
    {
        string output = Path.Combine(_dir, "bad.gguf");
        var stdout = new StringWriter(); var stderr = new StringWriter();
        int code = CliMain.Run(["convert", "hf", dir, "-o", output], stdout, stderr);
        Assert.Equal(1, code);
        var lines = stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("microlm: error", StringComparison.Ordinal)).ToList();
        Assert.Single(lines);
        Assert.Contains(expected, lines[0], StringComparison.Ordinal);
        Assert.False(File.Exists(output));
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp")); // nor its temporary
    }

    private string Small(string name, Func<SyntheticHfOptions, SyntheticHfOptions>? change = null)
    {
        var o = new SyntheticHfOptions { Family = "gptneo", TokenizerGguf = Gpt2Vocab, Layers = 2, Dim = 32, Heads = 2, Hidden = 64, ContextLength = 16 };
        return SyntheticHf.Write(Path.Combine(_dir, name), change?.Invoke(o) ?? o).Directory;
    }

    [SharedFact]
    public void Truncated_safetensors_fails_cleanly()
    {
        string dir = Small("trunc");
        string file = Path.Combine(dir, "model.safetensors");
        var bytes = File.ReadAllBytes(file);
        File.WriteAllBytes(file, bytes[..(bytes.Length - 100)]);
        AssertFails(dir, "bytes");
    }

    [SharedFact]
    public void Hostile_header_length_fails_without_allocating()
    {
        string dir = Small("hostile");
        string file = Path.Combine(dir, "model.safetensors");
        var bytes = File.ReadAllBytes(file);
        BitConverter.GetBytes(ulong.MaxValue - 7).CopyTo(bytes, 0);
        File.WriteAllBytes(file, bytes);
        AssertFails(dir, "header length");
    }

    [SharedFact]
    public void Unknown_dtype_fails_cleanly()
    {
        string dir = Small("dtype");
        string file = Path.Combine(dir, "model.safetensors");
        var bytes = File.ReadAllBytes(file);
        var text = System.Text.Encoding.Latin1.GetString(bytes);
        int at = text.IndexOf("\"F32\"", StringComparison.Ordinal);
        System.Text.Encoding.Latin1.GetBytes("\"Q32\"").CopyTo(bytes, at);
        File.WriteAllBytes(file, bytes);
        AssertFails(dir, "unknown dtype 'Q32'");
    }

    [SharedFact]
    public void Missing_tensor_fails_cleanly() =>
        AssertFails(Small("missing", o => o with { Omit = new HashSet<string> { "transformer.h.1.mlp.c_fc.bias" } }), "missing tensor 'transformer.h.1.mlp.c_fc.bias'");

    [SharedFact]
    public void Config_disagreeing_with_tensors_fails_cleanly()
    {
        string dir = Small("mismatch");
        string cfg = Path.Combine(dir, "config.json");
        File.WriteAllText(cfg, File.ReadAllText(cfg).Replace("\"intermediate_size\": 64", "\"intermediate_size\": 128"));
        AssertFails(dir, "config.json implies");
    }

    [SharedFact]
    public void Unknown_architecture_fails_cleanly()
    {
        string dir = Small("arch");
        string cfg = Path.Combine(dir, "config.json");
        File.WriteAllText(cfg, File.ReadAllText(cfg).Replace("GPTNeoForCausalLM", "BloomForCausalLM"));
        AssertFails(dir, "BloomForCausalLM is not supported");
    }

    [Fact]
    public void Overlapping_tensors_are_rejected()
    {
        var bytes = SyntheticHf.Safetensors([("a", "F32", [2], new byte[8]), ("b", "F32", [2], new byte[8])]);
        var text = System.Text.Encoding.Latin1.GetString(bytes);
        int at = text.IndexOf("[8,16]", StringComparison.Ordinal);
        System.Text.Encoding.Latin1.GetBytes("[4,12]").CopyTo(bytes, at);
        var e = Assert.Throws<MicroLmException>(() => SafetensorsFile.FromMemory("x", bytes));
        Assert.Contains("overlaps", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Safetensors_reads_values_in_place()
    {
        var bytes = SyntheticHf.Safetensors([("w", "BF16", [2, 2], SyntheticHf.Encode([1f, -2f, 0.5f, 3f], "BF16")), ("v", "F16", [3], SyntheticHf.Encode([0.25f, 1f, -1f], "F16"))]);
        using var f = SafetensorsFile.FromMemory("x", bytes);
        Assert.Equal([1f, -2f, 0.5f, 3f], f.Tensors["w"].ToFloats());
        Assert.Equal([0.25f, 1f, -1f], f.Tensors["v"].ToFloats());
        Assert.Equal([2L, 2], f.Tensors["w"].Shape);
    }
}
