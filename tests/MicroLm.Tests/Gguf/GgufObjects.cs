using System.Collections;
using MicroLm.Gguf;

namespace MicroLm.Tests.Gguf;

/// <summary>Deep equality for the plain .NET data of <see cref="GgufValue.ToObject"/>: same runtime types,
/// floats compared by bit pattern (so NaN payloads and -0.0 must survive), arrays element by element.</summary>
internal sealed class GgufObjects : IEqualityComparer<object>
{
    public static readonly GgufObjects Comparer = new();

    public new bool Equals(object? x, object? y)
    {
        if (x is null || y is null) return x is null && y is null;
        if (x.GetType() != y.GetType()) return false;
        switch (x)
        {
            case float a: return BitConverter.SingleToUInt32Bits(a) == BitConverter.SingleToUInt32Bits((float)y);
            case double a: return BitConverter.DoubleToUInt64Bits(a) == BitConverter.DoubleToUInt64Bits((double)y);
            case GgufArray a:
                var b = (GgufArray)y;
                return a.ElementType == b.ElementType && Equals(a.Items, b.Items);
            case Array a:
                var bb = (Array)y;
                if (a.Length != bb.Length) return false;
                for (int i = 0; i < a.Length; i++) if (!Equals(a.GetValue(i), bb.GetValue(i))) return false;
                return true;
            default: return x.Equals(y);
        }
    }

    public int GetHashCode(object obj) => 0;

    public static string Show(object? o) => o switch
    {
        null => "null",
        GgufArray a => $"{a.ElementType}[{Show(a.Items)}]",
        string s => $"\"{s}\"",
        float f => $"f32:{BitConverter.SingleToUInt32Bits(f):x8}",
        double d => $"f64:{BitConverter.DoubleToUInt64Bits(d):x16}",
        IEnumerable e => "[" + string.Join(", ", e.Cast<object>().Select(Show)) + "]",
        _ => $"{o.GetType().Name}:{o}",
    };
}
