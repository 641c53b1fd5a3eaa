namespace MicroLm.Sampling;

/// <summary>The sampler's random numbers, specified here so they are the same on every platform and
/// .NET version (System.Random's algorithm is not a contract): SplitMix64, and a float in [0, 1)
/// from the top 24 bits.</summary>
internal struct Rng(ulong seed)
{
    private ulong _state = seed;

    public ulong NextUInt64()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public float NextFloat() => (NextUInt64() >> 40) * (1f / 16777216f);
}
