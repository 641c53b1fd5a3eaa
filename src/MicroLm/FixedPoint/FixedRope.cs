namespace MicroLm.FixedPoint;

/// <summary>Rotary position embeddings in integers. Pair k turns by pos·base^(−2k/d): the frequency is
/// 2^(−(2k/d)·log2 base), with log2 and exp2 computed in integers (Q.40 and Q.62), kept as turns per
/// position in Q0.64 so that pos · turns wraps exactly at whole turns; cos and sin of the angle are Q2.30.
/// LLaMA rotates adjacent pairs (x[2k], x[2k+1]); GPT-NeoX rotates halves (x[k], x[k+d/2]).</summary>
internal sealed class FixedRope
{
    private readonly ulong[] _turns;
    public int Dimensions { get; }
    public bool NeoxStyle { get; }

    /// <param name="freqBaseBits">The rope frequency base as binary32 bits (decoded, never computed with as a float).</param>
    public FixedRope(int dimensions, uint freqBaseBits, bool neoxStyle)
    {
        Dimensions = dimensions;
        NeoxStyle = neoxStyle;
        if (!Fixed.DecodeFloat32(freqBaseBits, out long m, out int e) || m <= 0)
            throw new MicroLmException("the rope frequency base must be a positive number");
        long log2Base = FixedMath.Log2Q40(m, e);
        if (log2Base < 0) throw new MicroLmException("the fixed-point backend needs a rope frequency base of at least 1");
        _turns = new ulong[dimensions / 2];
        for (int k = 0; k < _turns.Length; k++)
        {
            long exponent = (long)((Int128)log2Base * (2 * k) / dimensions); // (2k/d)·log2 base in Q.40
            _turns[k] = FixedMath.TurnsQ64(FixedMath.Exp2NegativeQ62(exponent));
        }
    }

    /// <summary>cos and sin (Q2.30) of every pair's angle at <paramref name="pos"/>.</summary>
    public void Angles(int pos, Span<int> cos, Span<int> sin)
    {
        for (int k = 0; k < _turns.Length; k++)
            FixedMath.CosSin(unchecked((ulong)pos * _turns[k]), out cos[k], out sin[k]);
    }

    /// <summary>Rotates each head of <paramref name="x"/> (heads × headDim, Q16.16) in place:
    /// (x0·cos − x1·sin, x0·sin + x1·cos), each a 64-bit sum of two products below 2⁶¹, rounded once.</summary>
    public void Apply(Span<int> x, int heads, int headDim, ReadOnlySpan<int> cos, ReadOnlySpan<int> sin, RangeGuard guard)
    {
        int half = Dimensions / 2;
        for (int h = 0; h < heads; h++)
        {
            var v = x.Slice(h * headDim, headDim);
            for (int k = 0; k < half; k++)
            {
                int i0 = NeoxStyle ? k : 2 * k, i1 = NeoxStyle ? k + half : 2 * k + 1;
                long x0 = v[i0], x1 = v[i1];
                v[i0] = Fixed.Saturate(Fixed.RoundShift(x0 * cos[k] - x1 * sin[k], Fixed.Q30), guard);
                v[i1] = Fixed.Saturate(Fixed.RoundShift(x0 * sin[k] + x1 * cos[k], Fixed.Q30), guard);
            }
        }
    }
}
