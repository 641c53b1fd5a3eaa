namespace MicroLm.Models;

/// <summary>Memory one layer carries from token to token: a KV cache (every position or a sliding
/// window) or a recurrent state. The architecture creates it (it knows which layer needs what), the
/// session holds it (one set per sequence), <see cref="Session.Reset"/> clears it.</summary>
internal abstract class LayerMemory
{
    /// <summary>The layer this memory belongs to.</summary>
    public int Layer { get; }

    protected LayerMemory(int layer) => Layer = layer;

    /// <summary>Short name of the kind, for the memory envelope ("kv", "kv-window", "recurrent").</summary>
    public abstract string Kind { get; }

    /// <summary>Bytes allocated (what `inspect`'s envelope and the web page count).</summary>
    public abstract long Bytes { get; }

    /// <summary>Back to the state before the first token (the next token is position 0).</summary>
    public abstract void Reset();
}
