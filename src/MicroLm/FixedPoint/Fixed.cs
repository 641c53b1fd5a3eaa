namespace MicroLm.FixedPoint;

/// <summary>The fixed-point number formats and the integer rules every step of the fixed backend uses
/// (docs/fixed-point.md). Activations are Q16.16 in an int: raw = round(value · 2¹⁶), range ±32768.
/// Probabilities, sines and sigmoids are Q2.30 (raw = value · 2³⁰). Nothing here is a float: IEEE
/// numbers from the file are decoded from their bits.</summary>
internal static class Fixed
{
    public const int FracBits = 16;
    public const int One = 1 << FracBits;
    public const int Q30 = 30;
    public const int OneQ30 = 1 << Q30;

    /// <summary>round(v / 2^k) for k ≥ 1, ties toward +∞ (the backend's one rounding rule for activations).</summary>
    public static long RoundShift(long v, int k) => (v + (1L << (k - 1))) >> k;

    public static Int128 RoundShift(Int128 v, int k) => (v + (Int128.One << (k - 1))) >> k;

    /// <summary>v narrowed to an int, clamped to int's range; a clamp is counted on <paramref name="guard"/>.</summary>
    public static int Saturate(long v, RangeGuard guard)
    {
        if (v > int.MaxValue) { guard.Hit(); return int.MaxValue; }
        if (v < int.MinValue) { guard.Hit(); return int.MinValue; }
        return (int)v;
    }

    /// <summary>a + b on 64 bits, clamped (and counted) instead of wrapping.</summary>
    public static long AddSaturate(long a, long b, RangeGuard guard)
    {
        long s = a + b;
        if (((a ^ s) & (b ^ s)) < 0) { guard.Hit(); return a < 0 ? long.MinValue : long.MaxValue; }
        return s;
    }

    /// <summary>v · 2^k for k ≥ 0, clamped (and counted) instead of losing high bits.</summary>
    public static long ShiftLeftSaturate(long v, int k, RangeGuard guard)
    {
        if (k == 0) return v;
        if (k >= 63 || v > long.MaxValue >> k || v < long.MinValue >> k)
        {
            if (v == 0) return 0;
            guard.Hit();
            return v < 0 ? long.MinValue : long.MaxValue;
        }
        return v << k;
    }

    /// <summary>v · 2^s: a left shift (saturating) for s &gt; 0, a rounding right shift for s &lt; 0.</summary>
    public static long Scale(long v, int s, RangeGuard guard) =>
        s >= 0 ? ShiftLeftSaturate(v, s, guard) : s < -62 ? 0 : RoundShift(v, -s);

    /// <summary>Number of significant bits of |v| (0 for 0).</summary>
    public static int BitLength(ulong v) => 64 - System.Numerics.BitOperations.LeadingZeroCount(v);

    /// <summary>An IEEE binary32 given by its bits as m · 2^e with an integer m (|m| &lt; 2²⁴), exactly.
    /// False for infinity and NaN.</summary>
    public static bool DecodeFloat32(uint bits, out long m, out int e)
    {
        int exponent = (int)(bits >> 23) & 0xFF;
        long mantissa = bits & 0x7FFFFF;
        if (exponent == 0xFF) { m = 0; e = 0; return false; }
        if (exponent == 0) e = -149;
        else { mantissa |= 1L << 23; e = exponent - 150; }
        m = (bits & 0x8000_0000u) != 0 ? -mantissa : mantissa;
        return true;
    }

    /// <summary>An IEEE binary16 given by its bits as m · 2^e (|m| &lt; 2¹¹), exactly. False for infinity and NaN.</summary>
    public static bool DecodeFloat16(ushort bits, out long m, out int e)
    {
        int exponent = (bits >> 10) & 0x1F;
        long mantissa = bits & 0x3FF;
        if (exponent == 0x1F) { m = 0; e = 0; return false; }
        if (exponent == 0) e = -24;
        else { mantissa |= 1L << 10; e = exponent - 25; }
        m = (bits & 0x8000) != 0 ? -mantissa : mantissa;
        return true;
    }

    /// <summary>The binary32 with bits <paramref name="bits"/> as a fixed-point number with
    /// <paramref name="fracBits"/> fraction bits (rounded, ties toward +∞); false if it is not finite or
    /// does not fit in a long.</summary>
    public static bool Float32ToFixed(uint bits, int fracBits, out long value)
    {
        value = 0;
        if (!DecodeFloat32(bits, out long m, out int e)) return false;
        var guard = new RangeGuard();
        value = Scale(m, e + fracBits, guard);
        return guard.Count == 0;
    }
}

/// <summary>Counts values that had to be clamped at a format's limit. The forward pass checks it after
/// every layer and stops with an error naming the layer: the backend never wraps, and never goes on
/// silently with a clamped value.</summary>
internal sealed class RangeGuard
{
    private int _count;
    public int Count => Volatile.Read(ref _count);
    public void Hit() => Interlocked.Increment(ref _count);
    public void Reset() => Volatile.Write(ref _count, 0);
}
