namespace MicroLm.Train;

/// <summary>SplitMix64 (the sampler's <see cref="Sampling.Rng"/>): a small seeded generator whose stream is fixed
/// by the seed on every platform (integer arithmetic only). Uniform floats are built from the top 24 bits, so they
/// are exact.</summary>
internal sealed class SplitMix(ulong seed)
{
    private Sampling.Rng _rng = new(seed);

    public ulong Next() => _rng.NextUInt64();

    /// <summary>0 ≤ result &lt; n (n &gt; 0), by rejection so that every value is equally likely.</summary>
    public int Below(int n)
    {
        ulong bound = (ulong)n, limit = ulong.MaxValue - ulong.MaxValue % bound;
        ulong x;
        do x = Next(); while (x >= limit);
        return (int)(x % bound);
    }

    public bool Chance(int percent) => Below(100) < percent;

    public T Pick<T>(IReadOnlyList<T> items) => items[Below(items.Count)];

    /// <summary>A float in [-1, 1) with 24 bits of precision.</summary>
    public float Symmetric() => (int)(Next() >> 40) * (1f / (1 << 23)) - 1f;
}
