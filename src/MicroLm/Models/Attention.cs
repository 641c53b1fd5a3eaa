using MicroLm.Generation;
using MicroLm.Math;

namespace MicroLm.Models;

/// <summary>Causal multi-head attention over the session's KV cache, with grouped-query heads
/// (query head h reads KV head h / (heads / kvHeads)). Shared by the model families.</summary>
internal static class Attention
{
    /// <summary>For one token at <paramref name="pos"/> and one query head: out = softmax(q·K/√d) · V over positions 0..pos.</summary>
    public static void Head(Session s, int layer, int pos, ReadOnlySpan<float> q, int kvHead, Span<float> scores, Span<float> output)
    {
        var c = s.Config;
        int hd = c.HeadDim, kvDim = c.KvDim;
        float scale = 1f / MathF.Sqrt(hd);
        var keys = s.KeyCache[layer];
        var values = s.ValueCache[layer];
        for (int t = 0; t <= pos; t++)
            scores[t] = Kernels.Dot(q, keys.AsSpan(t * kvDim + kvHead * hd, hd)) * scale;
        DetMath.SoftmaxInPlace(scores[..(pos + 1)]);
        output.Clear();
        for (int t = 0; t <= pos; t++)
            Kernels.AddScaled(output, scores[t], values.AsSpan(t * kvDim + kvHead * hd, hd));
    }
}
