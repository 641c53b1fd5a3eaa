using System.Runtime.InteropServices;

namespace MicroLm.FixedPoint;

/// <summary>The one place the fixed backend meets floating point: Q16.16 logits become binary32 by
/// building each float's bits from the integer (sign, exponent, mantissa), exactly. A logit with more
/// than 24 significant bits (|logit| ≥ 256) is first rounded to 24 bits, ties to even, in integers, so
/// the float equals the rounded integer exactly. No floating-point instruction runs here; the float
/// type appears only as the destination (tests/MicroLm.Tests/FixedPoint/NoFloatTests.cs allows this
/// one method).</summary>
internal static class FixedLogits
{
    /// <summary>Writes the Q16.16 logits <paramref name="raw"/> into the session's float logits, from index 0.</summary>
    public static void ToFloat32(ReadOnlySpan<int> raw, Session session)
    {
        var bits = MemoryMarshal.Cast<float, int>(session.Logits.AsSpan());
        for (int i = 0; i < raw.Length; i++) bits[i] = Float32Bits(raw[i]);
    }

    /// <summary>The binary32 bits of raw / 2¹⁶ (rounded to 24 significant bits, ties to even).</summary>
    public static int Float32Bits(int raw)
    {
        if (raw == 0) return 0;
        uint sign = raw < 0 ? 0x8000_0000u : 0;
        ulong a = (ulong)System.Math.Abs((long)raw);
        int shift = 0;
        int length = Fixed.BitLength(a);
        if (length > 24)
        {
            shift = length - 24;
            ulong kept = a >> shift, rest = a & ((1UL << shift) - 1), half = 1UL << (shift - 1);
            if (rest > half || (rest == half && (kept & 1) != 0)) kept++;
            a = kept;
            if (Fixed.BitLength(a) > 24) { a >>= 1; shift++; }
        }
        int top = Fixed.BitLength(a) - 1;                  // value = a · 2^(shift − 16), a in [2^top, 2^(top+1))
        uint exponent = (uint)(top + shift - Fixed.FracBits + 127);
        uint mantissa = (uint)((a << (23 - top)) & 0x7FFFFF);
        return (int)(sign | exponent << 23 | mantissa);
    }
}
