using System.Diagnostics;
using MicroLm.Generation;
using MicroLm.Math;
using MicroLm.Models;
using MicroLm.Synthetic;
using MicroLm.Tensors;
using Xunit.Abstractions;

namespace MicroLm.Tests.FalconH1;

/// <summary>Falcon-H1 in-process: hyperparameters, bit-identical results across threads, prompt chunking and
/// sessions, the recurrent state's constant size, and one-line errors for inconsistent files. (Agreement with
/// llama.cpp is in the oracle tests.)</summary>
public class FalconH1Tests(ITestOutputHelper output)
{
    // GQA, 2 SSM groups with grouped RMSNorm, a 4-tap convolution.
    private static readonly SyntheticFalconH1Options Small = new() { Seed = 5, ContextLength = 160, MatrixType = GgmlType.Q8_0 };
    private static readonly byte[] SmallBytes = SyntheticFalconH1.ToBytes(Small);
    internal static readonly int[] Prompt = [5, 77, 200, 13, 9, 301, 42, 42, 7, 150, 64, 3, 99, 250, 18, 111, 6, 280, 33];

    [Fact]
    public void Loads_llama_cpp_hyperparameters_and_the_ssm_shape()
    {
        using var model = Model.Load(SmallBytes);
        var c = model.Config;
        Assert.Equal("falcon-h1", c.Architecture);
        Assert.Equal((64, 160, 2, 4, 2, 16, 16), (c.Dim, c.HiddenDim, c.Layers, c.Heads, c.KvHeads, c.HeadDim, c.RopeDims));
        Assert.Equal(1e11f, c.RopeFreqBase);
        var ssm = Assert.IsType<Models.FalconH1>(model.Architecture).Ssm;
        Assert.Equal(new Mamba2Shape(ConvKernel: 4, Inner: 128, State: 16, Heads: 8, Groups: 2), ssm);
        Assert.Equal((16, 64, 192, 2 * 128 + 2 * 2 * 16 + 8), (ssm.HeadDim, ssm.GroupSize, ssm.ConvChannels, ssm.Projection));
    }

    [Fact]
    public void Each_layer_holds_a_kv_cache_and_a_recurrent_state_counted_in_the_envelope()
    {
        using var model = Model.Load(SmallBytes);
        using var session = model.CreateSession(contextLength: 100);
        var c = model.Config;
        var ssm = ((Models.FalconH1)model.Architecture).Ssm;
        long perLayer = 4L * (ssm.ConvChannels * (ssm.ConvKernel - 1) + ssm.Inner * ssm.State);
        Assert.Equal(c.Layers * perLayer, c.RecurrentStateBytes);
        Assert.Equal(c.KvCacheBytes(100, 4) + c.RecurrentStateBytes, session.MemoryBytes);
        for (int l = 0; l < c.Layers; l++)
        {
            Assert.Contains(session.Memory, m => m.Layer == l && m.Kind == "kv");
            Assert.Contains(session.Memory, m => m.Layer == l && m is RecurrentState r && r.Bytes == perLayer);
        }
        // `inspect` shows it, in text and JSON.
        string path = Path.Combine(Path.GetTempPath(), $"microlm-falcon-{Environment.ProcessId}.gguf");
        try
        {
            File.WriteAllBytes(path, SmallBytes);
            var stdout = new StringWriter();
            Assert.Equal(0, MicroLm.Cli.CliMain.Run(["inspect", path], stdout, new StringWriter()));
            Assert.Contains($"SSM state      {c.RecurrentStateBytes,14:N0} bytes", stdout.ToString());
            stdout = new StringWriter();
            Assert.Equal(0, MicroLm.Cli.CliMain.Run(["inspect", path, "--json"], stdout, new StringWriter()));
            Assert.Contains($"\"ssm_state\": {c.RecurrentStateBytes}", stdout.ToString());
        }
        finally { File.Delete(path); }
    }

    private static float[][] Run(Model model, int threads, int batch, bool lastOnly = false, int generate = 6)
    {
        using var session = model.CreateSession(threads: threads, maxBatch: 32);
        return Continue(session, batch, lastOnly, generate);
    }

    private static float[][] Continue(Session session, int batch, bool lastOnly, int generate)
    {
        var all = new List<float[]>();
        if (lastOnly) all.Add(session.Evaluate(Prompt, batch, lastLogitsOnly: true).ToArray());
        else session.Evaluate(Prompt, batch, (_, _, l) => all.Add(l.ToArray()));
        for (int i = 0; i < generate; i++) session.Evaluate([Kernels.ArgMax(all[^1])], onLogits: (_, _, l) => all.Add(l.ToArray()));
        return all.ToArray();
    }

    [Fact]
    public void Threads_and_prompt_chunks_give_identical_bits()
    {
        using var model = Model.Load(SmallBytes);
        // One token at a time, one thread: the reference every other way of evaluating must reproduce.
        var reference = Run(model, threads: 1, batch: 1);
        foreach (var (threads, batch) in new[] { (1, 32), (2, 32), (3, 5), (2, 1), (1, 19) })
        {
            var other = Run(model, threads, batch);
            Assert.Equal(reference.Length, other.Length);
            for (int p = 0; p < reference.Length; p++)
                Assert.True(reference[p].AsSpan().SequenceEqual(other[p]), $"position {p} differs with {threads} threads, batch {batch}");
        }
        // Prefill computing only the last position's logits: the same bits there, and the same continuation.
        var last = Run(model, threads: 2, batch: 7, lastOnly: true);
        Assert.True(reference[Prompt.Length - 1].AsSpan().SequenceEqual(last[0]));
        for (int i = 1; i < last.Length; i++) Assert.True(reference[Prompt.Length - 1 + i].AsSpan().SequenceEqual(last[i]), $"generated position {i}");
    }

    [Fact]
    public void The_recurrent_state_changes_the_result()
    {
        // The same token after different histories must give different logits (the state is carried), and the
        // convolution/SSM state must matter even where attention alone could not tell (a 1-token prefix vs another).
        using var model = Model.Load(SmallBytes);
        using var a = model.CreateSession();
        using var b = model.CreateSession();
        a.Evaluate([10, 20]);
        b.Evaluate([11, 20]);
        var la = a.Evaluate([30]).ToArray();
        var lb = b.Evaluate([30]).ToArray();
        Assert.False(la.AsSpan().SequenceEqual(lb));
    }

    [Fact]
    public void Reset_reproduces_the_first_run()
    {
        using var model = Model.Load(SmallBytes);
        using var session = model.CreateSession(threads: 1);
        var first = Continue(session, batch: 4, lastOnly: false, generate: 20);
        session.Reset();
        var second = Continue(session, batch: 4, lastOnly: false, generate: 20);
        for (int p = 0; p < first.Length; p++) Assert.True(first[p].AsSpan().SequenceEqual(second[p]), $"position {p} differs after Reset");
    }

    // ---------------------------------------------------------------- bad files: one clear line each

    private static readonly SyntheticFalconH1Options Tiny = new()
    {
        Dim = 32, HiddenDim = 64, Layers = 1, Heads = 2, KvHeads = 1, SsmInner = 64, SsmHeads = 4, SsmGroups = 2, SsmState = 8, VocabSize = 300,
    };

    private static string LoadError(SyntheticFalconH1Options o)
    {
        var e = Assert.Throws<MicroLmException>(() => Model.Load(SyntheticFalconH1.ToBytes(o)));
        Assert.DoesNotContain('\n', e.Message);
        return e.Message;
    }

    [Theory]
    [InlineData("blk.0.ssm_in.weight")]
    [InlineData("blk.0.ssm_conv1d.weight")]
    [InlineData("blk.0.ssm_conv1d.bias")]
    [InlineData("blk.0.ssm_dt.bias")]
    [InlineData("blk.0.ssm_a")]
    [InlineData("blk.0.ssm_d")]
    [InlineData("blk.0.ssm_out.weight")]
    [InlineData("blk.0.ffn_norm")]
    public void Missing_ssm_tensor_is_named(string name)
    {
        string message = LoadError(Tiny with { OmitTensors = new HashSet<string> { name } });
        Assert.Contains($"missing tensor '{(name == "blk.0.ffn_norm" ? name + ".weight" : name)}'", message);
    }

    [Fact]
    public void Missing_ssm_norm_means_no_norm()
    {
        // ssm_norm is optional (Falcon-H1's mamba_rms_norm = false, as in the Tiny models).
        using var model = Model.Load(SyntheticFalconH1.ToBytes(Tiny with { SsmNorm = false }));
        using var session = model.CreateSession();
        Assert.True(Kernels.AllFinite(session.Evaluate([5, 6, 7])));
    }

    [Theory]
    // inner size not a multiple of the SSM heads
    [InlineData("ssm.inner_size", 66u, "ssm.inner_size 66 is not a multiple of the SSM head count (ssm.time_step_rank) 4")]
    // inner size consistent with the heads but not with the tensors
    [InlineData("ssm.inner_size", 96u, "tensor 'blk.0.ssm_in.weight' has shape")]
    // head count that the groups do not divide
    [InlineData("ssm.time_step_rank", 3u, "is not a multiple of the SSM head count (ssm.time_step_rank) 3")]
    [InlineData("ssm.time_step_rank", 8u, "tensor 'blk.0.ssm_in.weight' has shape")]
    [InlineData("ssm.group_count", 3u, "the SSM head count (ssm.time_step_rank) 4 is not a multiple of ssm.group_count 3")]
    [InlineData("ssm.group_count", 4u, "tensor 'blk.0.ssm_in.weight' has shape")]
    [InlineData("ssm.state_size", 16u, "tensor 'blk.0.ssm_in.weight' has shape")]
    [InlineData("ssm.conv_kernel", 3u, "tensor 'blk.0.ssm_conv1d.weight' has shape")]
    [InlineData("ssm.conv_kernel", 0u, "metadata 'falcon-h1.ssm.conv_kernel' = 0 is out of range")]
    public void Inconsistent_ssm_sizes_give_one_clear_error(string key, uint value, string expected)
    {
        string message = LoadError(Tiny with { KeyOverrides = new Dictionary<string, uint> { [key] = value } });
        Assert.Contains(expected, message);
        output.WriteLine(message);
    }

    [Fact]
    public void Missing_ssm_key_is_named()
    {
        string message = LoadError(Tiny with { OmitKeys = new HashSet<string> { "ssm.state_size" } });
        Assert.Equal("model is missing metadata key 'falcon-h1.ssm.state_size'", message);
    }

    // ---------------------------------------------------------------- the scan's kernel

    [Fact]
    public void Scan_update_and_dot_has_the_bits_of_the_loop_and_Kernels_Dot_on_every_vector_width()
    {
        var rng = new SyntheticRandom(77);
        int saved = Kernels.VectorBits;
        try
        {
            foreach (int n in new[] { 1, 5, 8, 15, 16, 17, 24, 32, 48, 64, 100, 128 })
            {
                float[] Values() => Enumerable.Range(0, n).Select(_ => rng.NextNormal()).ToArray();
                float[] s0 = Values(), b = Values(), c = Values();
                float decay = 0.73f, xDelta = -1.37f;
                // Reference: the elementwise loop, then the contract's dot, on the scalar path.
                Kernels.VectorBits = 0;
                var expectedState = s0.Select((v, j) => v * decay + b[j] * xDelta).ToArray();
                float expected = Kernels.Dot(expectedState, c);
                foreach (int bits in new[] { 0, 128, 256, 512 })
                {
                    Kernels.VectorBits = bits;
                    var state = (float[])s0.Clone();
                    float got = ScanKernels.UpdateAndDot(state, b, c, decay, xDelta);
                    Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(got), $"n {n}, {bits} bits: {got} vs {expected}");
                    Assert.True(expectedState.AsSpan().SequenceEqual(state), $"n {n}, {bits} bits: state differs");
                }
            }
        }
        finally { Kernels.VectorBits = saved; }
    }

    [Fact]
    public void Batched_convolution_has_the_bits_of_token_by_token_scalar_steps()
    {
        // The vector path (eight channels per lane group, taken for batches of 4+ tokens) against the scalar loop one
        // token at a time, over channel ranges that start and end off a multiple of 8 and kernels of 1 to 5 taps.
        var rng = new SyntheticRandom(31);
        int saved = Kernels.VectorBits;
        try
        {
            foreach (int taps in new[] { 1, 2, 4, 5 })
                foreach (int count in new[] { 1, 4, 7, 19 })
                {
                    var shape = new Mamba2Shape(ConvKernel: taps, Inner: 40, State: 4, Heads: 4, Groups: 1); // 48 channels
                    int channels = shape.ConvChannels, stride = channels + 9, offset = 5;
                    float[] Values(int n) => Enumerable.Range(0, n).Select(_ => rng.NextNormal()).ToArray();
                    float[] weight = Values(channels * taps), bias = Values(channels), proj = Values(count * stride);
                    float[] window0 = Values(channels * (taps - 1));
                    foreach (var (c0, c1) in new[] { (0, channels), (3, 37), (8, 16), (45, 48) })
                    {
                        Kernels.VectorBits = 0;
                        var expectedState = shape.NewState(0);
                        window0.CopyTo(expectedState.Conv, 0);
                        var expected = new float[count * channels];
                        for (int t = 0; t < count; t++)
                        {
                            var one = new float[channels];
                            Mamba2.Convolve(shape, expectedState, weight, bias, proj.AsSpan(t * stride), stride, offset, 1, one, c0, c1);
                            one.AsSpan(c0, c1 - c0).CopyTo(expected.AsSpan(t * channels + c0));
                        }
                        foreach (int bits in new[] { 256, 512 })
                        {
                            Kernels.VectorBits = bits;
                            var state = shape.NewState(0);
                            window0.CopyTo(state.Conv, 0);
                            var got = new float[count * channels];
                            Mamba2.Convolve(shape, state, weight, bias, proj, stride, offset, count, got, c0, c1);
                            string where = $"taps {taps}, {count} tokens, channels {c0}..{c1}, {bits} bits";
                            Assert.True(expected.Select(BitConverter.SingleToInt32Bits).SequenceEqual(got.Select(BitConverter.SingleToInt32Bits)), where + ": outputs differ");
                            Assert.True(expectedState.Conv.SequenceEqual(state.Conv), where + ": windows differ");
                        }
                    }
                }
        }
        finally { Kernels.VectorBits = saved; }
    }

    [Fact]
    public void Batched_scan_has_the_bits_of_token_by_token_scalar_steps()
    {
        // The scan with each state row held across a batch's tokens (state size 64, chunks of 32 tokens) against one
        // token at a time on the scalar path: outputs and the carried state, two groups, head ranges of one thread's part.
        var rng = new SyntheticRandom(43);
        int saved = Kernels.VectorBits;
        try
        {
            var shape = new Mamba2Shape(ConvKernel: 4, Inner: 48, State: 64, Heads: 6, Groups: 2);
            int channels = shape.ConvChannels, projStride = shape.Projection + 3, dtOffset = shape.Inner + channels;
            float[] Values(int n, float scale = 1) => Enumerable.Range(0, n).Select(_ => rng.NextNormal() * scale).ToArray();
            float[] a = Values(shape.Heads).Select(v => -System.Math.Abs(v)).ToArray(), d = Values(shape.Heads), dtBias = Values(shape.Heads);
            foreach (int count in new[] { 2, 5, 33, 70 })
            {
                float[] conv = Values(count * channels), proj = Values(count * projStride);
                float[] ssm0 = Values(shape.Heads * shape.HeadDim * shape.State, 0.5f);
                foreach (var (h0, h1) in new[] { (0, shape.Heads), (1, 4) })
                {
                    Kernels.VectorBits = 0;
                    var expectedState = shape.NewState(0);
                    ssm0.CopyTo(expectedState.Ssm, 0);
                    var expected = new float[count * shape.Inner];
                    for (int t = 0; t < count; t++)
                    {
                        var one = new float[shape.Inner];
                        Mamba2.Scan(shape, expectedState, a, d, dtBias, conv.AsSpan(t * channels), proj.AsSpan(t * projStride), projStride, dtOffset, 1, one, h0, h1);
                        one.CopyTo(expected.AsSpan(t * shape.Inner));
                    }
                    foreach (int bits in new[] { 256, 512 })
                    {
                        Kernels.VectorBits = bits;
                        var state = shape.NewState(0);
                        ssm0.CopyTo(state.Ssm, 0);
                        var got = new float[count * shape.Inner];
                        Mamba2.Scan(shape, state, a, d, dtBias, conv, proj, projStride, dtOffset, count, got, h0, h1);
                        string where = $"{count} tokens, heads {h0}..{h1}, {bits} bits";
                        Assert.True(expected.Select(BitConverter.SingleToInt32Bits).SequenceEqual(got.Select(BitConverter.SingleToInt32Bits)), where + ": outputs differ");
                        Assert.True(expectedState.Ssm.Select(BitConverter.SingleToInt32Bits).SequenceEqual(state.Ssm.Select(BitConverter.SingleToInt32Bits)), where + ": states differ");
                    }
                }
            }
        }
        finally { Kernels.VectorBits = saved; }
    }

    // ---------------------------------------------------------------- DetMath.Softplus

    [Fact]
    public void Softplus_is_correctly_rounded_against_a_double_reference()
    {
        int worst = 0;
        for (float x = -30f; x <= 30f; x += 0.00731f)
        {
            double reference = x > 20 ? x : System.Math.Log(1 + System.Math.Exp(x)); // libm in the test only
            if (x < -20) reference = System.Math.Exp(x);
            int ulps = System.Math.Abs(BitConverter.SingleToInt32Bits(DetMath.Softplus(x)) - BitConverter.SingleToInt32Bits((float)reference));
            worst = System.Math.Max(worst, ulps);
        }
        Assert.True(worst <= 1, $"softplus differs from the double reference by {worst} ulp");
        Assert.Equal(0f, DetMath.Softplus(float.NegativeInfinity));
        Assert.Equal(float.PositiveInfinity, DetMath.Softplus(float.PositiveInfinity));
        Assert.True(float.IsNaN(DetMath.Softplus(float.NaN)));
        Assert.Equal(25f, DetMath.Softplus(25f));
        Assert.Equal((float)System.Math.Log(2), DetMath.Softplus(0f));
    }
}

/// <summary>The long Falcon-H1 generation measures the process's RSS, so it runs alone (the "memory" collection is not
/// run in parallel with other tests, whose allocations would show in the same process).</summary>
[Collection("memory")]
public class FalconH1MemoryTests(ITestOutputHelper output)
{
    /// <summary>Greedy decoding far past the prompt: nothing is allocated per token and the process does not grow
    /// (the KV cache is allocated once for the context, the convolution window and SSM state are constant-size);
    /// Session.Reset then reproduces the whole trace. CI runs 1,500 tokens; FALCON_SOAK_TOKENS=100000 is the long
    /// run (docs/falcon-h1.md has its numbers).</summary>
    [Fact]
    public void Long_generation_keeps_memory_flat_and_Reset_reproduces_its_trace()
    {
        int tokens = int.TryParse(Environment.GetEnvironmentVariable("FALCON_SOAK_TOKENS"), out var n) ? n : 1500;
        var options = new SyntheticFalconH1Options
        {
            // One attention head of 8 in one layer: attention over 10^5 positions is O(n²) work, the mixer is O(n).
            Dim = 32, HiddenDim = 64, Layers = 1, Heads = 1, KvHeads = 1, HeadDim = 8, SsmInner = 64, SsmHeads = 4, SsmGroups = 2, SsmState = 16,
            ContextLength = tokens + 8, VocabSize = 300, Seed = 9,
        };
        using var model = Model.Load(SyntheticFalconH1.ToBytes(options));
        using var session = model.CreateSession(contextLength: tokens + 8, threads: 1, maxBatch: 8);
        (string Hash, long Allocated, long[] Rss, long ManagedStart, long ManagedEnd) Trace()
        {
            var sha = new Sha256();
            var one = new int[1];
            var logits = session.Evaluate(FalconH1Tests.Prompt.AsSpan(0, 4));
            var rss = new List<long>();
            long allocated = 0, managedStart = 0;
            for (int i = 0; i < tokens; i++)
            {
                one[0] = Kernels.ArgMax(logits);
                sha.Append(System.Runtime.InteropServices.MemoryMarshal.AsBytes(logits));
                if (i == 64)
                {
                    managedStart = GC.GetTotalMemory(false);
                    allocated = -GC.GetAllocatedBytesForCurrentThread(); // after warm-up (JIT tiers, first calls)
                }
                logits = session.Evaluate(one);
                if ((i + 1) % (tokens / 10) == 0)
                {
                    long before = GC.GetAllocatedBytesForCurrentThread();
                    rss.Add(Rss());
                    if (i > 64) allocated -= GC.GetAllocatedBytesForCurrentThread() - before; // the measurement's own
                }
            }
            allocated += GC.GetAllocatedBytesForCurrentThread();
            var digest = new byte[32];
            sha.Finish(digest);
            return (Convert.ToHexString(digest), allocated, rss.ToArray(), managedStart, GC.GetTotalMemory(false));
        }
        var first = Trace();
        output.WriteLine($"{tokens} tokens: allocated after warm-up {first.Allocated:N0} bytes; RSS at each tenth (MiB): " +
                         string.Join(" ", first.Rss.Select(r => (r / 1048576.0).ToString("F1"))) +
                         $"; managed heap {first.ManagedStart / 1048576.0:F2} MiB after warm-up, {first.ManagedEnd / 1048576.0:F2} MiB at the end; trace {first.Hash[..16]}");
        Assert.True(first.Allocated < 16 * 1024, $"{first.Allocated} bytes allocated while decoding: the decode loop must not allocate per token");
        // Growth from the first to the last tenth: nothing but the page cache of the preallocated KV cache being touched.
        long kvBytes = model.Config.KvCacheBytes(tokens + 8, 4);
        Assert.True(first.Rss[^1] - first.Rss[0] <= kvBytes + 16 * 1048576L, $"RSS grew {first.Rss[^1] - first.Rss[0]:N0} bytes");
        session.Reset();
        var second = Trace();
        Assert.Equal(first.Hash, second.Hash);
        Assert.True(second.Rss[^1] - first.Rss[^1] <= 16 * 1048576L, "the second run must not grow the process");
    }

    private static long Rss()
    {
        // VmRSS from /proc (Linux); elsewhere the working set.
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmRSS:")) return long.Parse(line[6..].Trim().Split(' ')[0]) * 1024;
        }
        catch (IOException) { }
        return Process.GetCurrentProcess().WorkingSet64;
    }
}
