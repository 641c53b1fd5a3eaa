using MicroLm.Math;

namespace MicroLm.Models;

/// <summary>Rotary position embeddings. Pair k of the rotated dimensions turns by pos·base^(−2k/d).
/// LLaMA rotates adjacent pairs (x[2k], x[2k+1]); GPT-NeoX rotates halves (x[k], x[k+d/2]).</summary>
internal sealed partial class Rope
{
    private readonly float[] _frequencies;
    public int Dimensions { get; }
    public bool NeoxStyle { get; }

    public Rope(int dimensions, float freqBase, bool neoxStyle)
    {
        Dimensions = dimensions;
        NeoxStyle = neoxStyle;
        _frequencies = new float[dimensions / 2];
        for (int k = 0; k < _frequencies.Length; k++)
            _frequencies[k] = 1f / DetMath.Pow(freqBase, 2f * k / dimensions);
    }

    /// <summary>cos and sin of every pair's angle at <paramref name="pos"/> (computed once per token, shared by all heads and layers).</summary>
    public void Angles(int pos, Span<float> cos, Span<float> sin)
    {
        for (int k = 0; k < _frequencies.Length; k++)
        {
            float theta = pos * _frequencies[k];
            cos[k] = DetMath.Cos(theta);
            sin[k] = DetMath.Sin(theta);
        }
    }

    /// <summary>Rotates each head of <paramref name="x"/> (heads × headDim values) in place.</summary>
    public void Apply(Span<float> x, int heads, int headDim, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        int half = Dimensions / 2;
        for (int h = 0; h < heads; h++)
        {
            var v = x.Slice(h * headDim, headDim);
            for (int k = 0; k < half; k++)
            {
                int i0 = NeoxStyle ? k : 2 * k, i1 = NeoxStyle ? k + half : 2 * k + 1;
                float x0 = v[i0], x1 = v[i1];
                v[i0] = x0 * cos[k] - x1 * sin[k];
                v[i1] = x0 * sin[k] + x1 * cos[k];
            }
        }
    }
}
