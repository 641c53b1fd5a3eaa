namespace MicroLm.Tests.FixedPoint.Injected;

// Deliberate floating point, each the kind of slip NoFloatTests must catch in the fixed backend.

internal static class ScaledByConstant
{
    public static int Half(int x) => (int)(x * 0.5);
}

internal static class SquareRoot
{
    public static long Root(long x) => (long)System.Math.Sqrt(x);
}

internal static class FromBits
{
    public static bool Positive(int bits)
    {
        float f = BitConverter.Int32BitsToSingle(bits);
        return f > 0 && bits != 0;
    }
}

internal static class Rounded
{
    public static long Round(long a, long b) => (long)System.Math.Round((decimal)a / b);
}

internal static class Generic
{
    public static int Count(int n) => new List<float>(n).Capacity;
}

internal sealed class Field
{
    private float _scale;
    public void Set(int bits) => _scale = BitConverter.Int32BitsToSingle(bits);
    public bool IsSet => _scale != 0;
}

internal static class IntegerOnly
{
    public static long Mul(long a, int b) => System.Math.BigMul(a, b, out long low) + low + System.Math.Abs(b);
}
