namespace MicroLm.Math;

// TEMPORARY stand-in, replaced by the deterministic implementation (branch math).
public static class DetMath
{
    public static float Exp(float x) => (float)System.Math.Exp(x);
    public static float Sin(float x) => (float)System.Math.Sin(x);
    public static float Cos(float x) => (float)System.Math.Cos(x);
    public static float Pow(float x, float y) => (float)System.Math.Pow(x, y);
    public static float Silu(float x) => x / (1f + Exp(-x));
    public static float GeluTanh(float x) => 0.5f * x * (1f + (float)System.Math.Tanh(0.7978845608f * (x + 0.044715f * x * x * x)));
    public static void Silu(ReadOnlySpan<float> x, Span<float> y) { for (int i = 0; i < x.Length; i++) y[i] = Silu(x[i]); }
    public static void GeluTanh(ReadOnlySpan<float> x, Span<float> y) { for (int i = 0; i < x.Length; i++) y[i] = GeluTanh(x[i]); }
    public static float SoftmaxInPlace(Span<float> x)
    {
        float max = float.NegativeInfinity;
        foreach (var v in x) max = System.Math.Max(max, v);
        float sum = 0;
        for (int i = 0; i < x.Length; i++) { x[i] = Exp(x[i] - max); sum += x[i]; }
        float inv = 1f / sum;
        for (int i = 0; i < x.Length; i++) x[i] *= inv;
        return sum;
    }
}
