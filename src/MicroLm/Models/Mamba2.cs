using System.Runtime.Intrinsics;
using MicroLm.Math;

namespace MicroLm.Models;

/// <summary>The sizes of a Mamba2 mixer (llama.cpp's ssm.* keys). The input projection's output per token
/// is z (Inner) | xBC (ConvChannels = Inner + 2·Groups·State) | dt (Heads); x splits into Heads heads of
/// HeadDim values, B and C into Groups groups of State values, and head h reads group h / (Heads/Groups)
/// (repeat_interleave, as Mamba2 and ggml_ssm_scan pair them).</summary>
internal sealed record Mamba2Shape(int ConvKernel, int Inner, int State, int Heads, int Groups)
{
    public int HeadDim => Inner / Heads;
    public int GroupSize => Inner / Groups;
    public int ConvChannels => Inner + 2 * Groups * State;
    public int Projection => Inner + ConvChannels + Heads;
    public int HeadsPerGroup => Heads / Groups;

    /// <summary>A layer's convolution window and SSM state of this shape (zero: the start of a sequence).</summary>
    public RecurrentState NewState(int layer) => new(layer, ConvChannels, ConvKernel, Heads, HeadDim, State);

    public long StateBytes => RecurrentState.BytesFor(ConvChannels, ConvKernel, Heads, HeadDim, State);
}

/// <summary>The two recurrent steps of a Mamba2 mixer, each over a range that one thread owns (channels for
/// the convolution, heads for the scan) and over a batch's tokens in order, so neither the thread count nor
/// the prompt's chunking changes a bit: every value is the same sequence of float operations as when the
/// tokens come one at a time.</summary>
internal static class Mamba2
{
    /// <summary>Causal depthwise convolution with its carried window, then bias and SiLU, for channels
    /// [c0, c1) of <paramref name="count"/> tokens. Token t's input channel c is proj[t·projStride + xbcOffset + c];
    /// its output goes to output[t·ConvChannels + c]. Per channel the sum runs over the kernel's taps
    /// oldest first from +0 (Σ_k w[c,k]·in[t−K+1+k], as ggml_ssm_conv), then + bias; the window then drops its
    /// oldest input and keeps this token's. SiLU last, over the range (DetMath's span form: the scalar's bits).</summary>
    public static void Convolve(Mamba2Shape s, RecurrentState state, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias,
        ReadOnlySpan<float> proj, int projStride, int xbcOffset, int count, Span<float> output, int c0, int c1)
    {
        int k = s.ConvKernel, keep = k - 1, channels = s.ConvChannels;
        var window = state.Conv.AsSpan();
        int c = c0;
        // A batch (prefill), eight channels at a time where the kernel is short (the usual 4 taps): the same operations per channel as
        // the loop below, lane by lane (this step was ~2 % of 90M-shape prefill when it ran channel by channel).
        if (count >= 4 && Vector256.IsHardwareAccelerated && Math.Kernels.VectorBits >= 256 && k <= MaxVectorTaps)
            for (; c + 8 <= c1; c += 8)
                Convolve8(keep, window.Slice(c * keep, 8 * keep), weight.Slice(c * k, 8 * k), bias.Slice(c, 8), proj, projStride, xbcOffset + c, count, output[c..], channels);
        for (; c < c1; c++)
        {
            var w = weight.Slice(c * k, k);
            var win = window.Slice(c * keep, keep);
            for (int t = 0; t < count; t++)
            {
                float input = proj[t * projStride + xbcOffset + c];
                float sum = 0f;
                for (int j = 0; j < keep; j++) sum += win[j] * w[j];
                sum += input * w[keep];
                output[t * channels + c] = sum + bias[c];
                for (int j = 0; j + 1 < keep; j++) win[j] = win[j + 1];
                if (keep > 0) win[keep - 1] = input;
            }
        }
        for (int t = 0; t < count; t++)
        {
            var row = output.Slice(t * channels + c0, c1 - c0);
            DetMath.Silu(row, row);
        }
    }

    private const int MaxVectorTaps = 8;

    /// <summary><see cref="Convolve"/> for eight consecutive channels, one per lane: the window and the taps held as
    /// vectors (transposed from their channel-major layout once per call), each token's sum formed from +0 over the
    /// taps oldest first, plus the newest input's product, plus the bias: the scalar loop's operations.</summary>
    private static void Convolve8(int keep, Span<float> window, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias,
        ReadOnlySpan<float> proj, int projStride, int inputOffset, int count, Span<float> output, int outputStride)
    {
        int k = keep + 1;
        Span<float> lanes = stackalloc float[8];
        Span<Vector256<float>> w = stackalloc Vector256<float>[MaxVectorTaps];
        Span<Vector256<float>> win = stackalloc Vector256<float>[MaxVectorTaps];
        for (int j = 0; j < k; j++)
        {
            for (int lane = 0; lane < 8; lane++) lanes[lane] = weight[lane * k + j];
            w[j] = Vector256.Create<float>(lanes);
        }
        for (int j = 0; j < keep; j++)
        {
            for (int lane = 0; lane < 8; lane++) lanes[lane] = window[lane * keep + j];
            win[j] = Vector256.Create<float>(lanes);
        }
        var b = Vector256.Create<float>(bias);
        for (int t = 0; t < count; t++)
        {
            var input = Vector256.Create<float>(proj.Slice(t * projStride + inputOffset, 8));
            var sum = Vector256<float>.Zero;
            for (int j = 0; j < keep; j++) sum += win[j] * w[j];
            sum += input * w[keep];
            (sum + b).CopyTo(output.Slice(t * outputStride, 8));
            for (int j = 0; j + 1 < keep; j++) win[j] = win[j + 1];
            if (keep > 0) win[keep - 1] = input;
        }
        for (int j = 0; j < keep; j++)
        {
            win[j].CopyTo(lanes);
            for (int lane = 0; lane < 8; lane++) window[lane * keep + j] = lanes[lane];
        }
    }

    /// <summary>The selective scan for heads [h0, h1) of <paramref name="count"/> tokens, with the D skip
    /// and the SiLU(z) gate: per token and head, Δ = softplus(dt + dt_bias), decay = exp(Δ·A);
    /// per value i of the head, state ← state·decay + B·(x_i·Δ) (elementwise over State, in that order of
    /// operations), y_i = state · C (a dot in the contract's order; both in <see cref="ScanKernels.UpdateAndDot"/>),
    /// out_i = (y_i + x_i·D) · SiLU(z_i). conv holds each token's convolved xBC (x | B | C); z and dt are read
    /// from proj at t·projStride (+0 for z, + dtOffset for dt). Output: token t's Inner values at t·Inner.</summary>
    public static void Scan(Mamba2Shape s, RecurrentState state, ReadOnlySpan<float> a, ReadOnlySpan<float> d, ReadOnlySpan<float> dtBias,
        ReadOnlySpan<float> conv, ReadOnlySpan<float> proj, int projStride, int dtOffset, int count, Span<float> output, int h0, int h1)
    {
        int hd = s.HeadDim, n = s.State, inner = s.Inner, channels = s.ConvChannels;
        var ssm = state.Ssm.AsSpan();
        if (count > 1 && ScanKernels.HasTokensPath(n))
        {
            ScanTokens(s, ssm, a, d, dtBias, conv, proj, projStride, dtOffset, count, output, h0, h1);
            return;
        }
        for (int t = 0; t < count; t++)
        {
            var xbc = conv.Slice(t * channels, channels);
            var z = proj.Slice(t * projStride, inner);
            var y = output.Slice(t * inner, inner);
            // y holds SiLU(z) first; each value is then multiplied by its scan output (same bits as y·SiLU(z)).
            DetMath.Silu(z.Slice(h0 * hd, (h1 - h0) * hd), y.Slice(h0 * hd, (h1 - h0) * hd));
            for (int h = h0; h < h1; h++)
            {
                int g = h / s.HeadsPerGroup;
                var b = xbc.Slice(inner + g * n, n);
                var c = xbc.Slice(inner + s.Groups * n + g * n, n);
                float delta = DetMath.Softplus(proj[t * projStride + dtOffset + h] + dtBias[h]);
                float decay = DetMath.Exp(delta * a[h]);
                for (int i = h * hd; i < (h + 1) * hd; i++)
                {
                    float x = xbc[i];
                    float yi = ScanKernels.UpdateAndDot(ssm.Slice(i * n, n), b, c, decay, x * delta) + x * d[h];
                    y[i] = yi * y[i];
                }
            }
        }
    }

    /// <summary>Tokens per pass of <see cref="ScanTokens"/>: their B and C rows stay in L1 while each state row runs through them.</summary>
    private const int ScanChunk = 32;

    /// <summary><see cref="Scan"/> for a batch with each state row held in registers across tokens
    /// (<see cref="ScanKernels.UpdateAndDotTokens"/>): the order of the loops changes (state row outside, tokens
    /// inside, in chunks), not any value's operations, so the bits are the token-by-token scan's.</summary>
    private static void ScanTokens(Mamba2Shape s, Span<float> ssm, ReadOnlySpan<float> a, ReadOnlySpan<float> d, ReadOnlySpan<float> dtBias,
        ReadOnlySpan<float> conv, ReadOnlySpan<float> proj, int projStride, int dtOffset, int count, Span<float> output, int h0, int h1)
    {
        int hd = s.HeadDim, n = s.State, inner = s.Inner, channels = s.ConvChannels;
        for (int t = 0; t < count; t++)
            DetMath.Silu(proj.Slice(t * projStride + h0 * hd, (h1 - h0) * hd), output.Slice(t * inner + h0 * hd, (h1 - h0) * hd));
        Span<float> delta = stackalloc float[ScanChunk], decay = stackalloc float[ScanChunk];
        for (int t0 = 0; t0 < count; t0 += ScanChunk)
        {
            int tn = System.Math.Min(ScanChunk, count - t0);
            var rows = conv[(t0 * channels)..];
            var outs = output[(t0 * inner)..];
            for (int h = h0; h < h1; h++)
            {
                int g = h / s.HeadsPerGroup;
                for (int t = 0; t < tn; t++)
                {
                    delta[t] = DetMath.Softplus(proj[(t0 + t) * projStride + dtOffset + h] + dtBias[h]);
                    decay[t] = DetMath.Exp(delta[t] * a[h]);
                }
                for (int i = h * hd; i < (h + 1) * hd; i++)
                    ScanKernels.UpdateAndDotTokens(ssm.Slice(i * n, n), rows, channels, inner + g * n, inner + s.Groups * n + g * n, i,
                        delta, decay, d[h], outs, inner, tn);
            }
        }
    }

    /// <summary>The gated output's RMSNorm, per group of GroupSize values (in place), with the norm weight.</summary>
    public static void GroupNorm(Mamba2Shape s, Span<float> y, ReadOnlySpan<float> weight, float eps)
    {
        int size = s.GroupSize;
        for (int g = 0; g < s.Groups; g++)
            Kernels.RmsNorm(y.Slice(g * size, size), weight.Slice(g * size, size), eps, y.Slice(g * size, size));
    }
}
