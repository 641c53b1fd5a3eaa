namespace MicroLm.Synthetic;

/// <summary>SplitMix64: a small seeded generator whose outputs are the same bits on every platform and
/// .NET version (System.Random's algorithm is not promised). Normal-ish values are the sum of four
/// uniforms (Irwin–Hall), rescaled to unit variance: additions and multiplications only, so no libm
/// function can change a weight between machines. Tails end at ±2√3 ≈ 3.46σ.</summary>
public sealed class SyntheticRandom(ulong seed)
{
    private ulong _state = seed;

    public ulong NextUInt64()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1), 24 random bits.</summary>
    public float NextFloat() => (NextUInt64() >> 40) * (1f / (1 << 24));

    /// <summary>Mean 0, standard deviation 1, bell-shaped.</summary>
    public float NextNormal()
    {
        float s = NextFloat() + NextFloat() + NextFloat() + NextFloat() - 2f; // variance 4/12
        return s * 1.7320508f;
    }

    /// <summary>A seed for a named stream, stable across runs (FNV-1a of the name mixed with the seed).</summary>
    public static ulong Derive(ulong seed, string name)
    {
        ulong h = 0xCBF29CE484222325UL;
        foreach (char c in name) { h ^= c; h *= 0x100000001B3UL; }
        return new SyntheticRandom(seed ^ h).NextUInt64();
    }
}
