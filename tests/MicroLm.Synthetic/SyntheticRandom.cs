namespace MicroLm.Synthetic;

/// <summary>The runtime's portable SplitMix64 (<see cref="MicroLm.Sampling.Rng"/>), plus what model
/// writing needs. Normal-ish values are the sum of four
/// uniforms (Irwin–Hall), rescaled to unit variance: additions and multiplications only, so no libm
/// function can change a weight between machines. Tails end at ±2√3 ≈ 3.46σ.</summary>
internal sealed class SyntheticRandom(ulong seed)
{
    private MicroLm.Sampling.Rng _rng = new(seed);

    public ulong NextUInt64() => _rng.NextUInt64();

    /// <summary>Uniform in [0, 1), 24 random bits.</summary>
    public float NextFloat() => _rng.NextFloat();

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
