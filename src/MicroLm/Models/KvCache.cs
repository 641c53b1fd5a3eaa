namespace MicroLm.Models;

/// <summary>One attention layer's keys and values. With <c>window</c> = 0 it holds every position of the
/// context; with a window W it is a ring of R = W + maxBatch − 1 slots (a batch stores all its keys
/// before any of its tokens attends, so the oldest W positions of the batch's first token must
/// survive the batch's writes). Each position is written at slot pos mod R and again at R + pos mod R,
/// so any W consecutive positions sit in consecutive slots and attention reads one contiguous range
/// in position order — the same order, so the same bits, as a cache that holds everything.</summary>
internal sealed class KvCache : LayerMemory
{
    /// <summary>Positions a token sees: 0 = every earlier position, W = itself and the W − 1 before it.</summary>
    public int Window { get; }
    /// <summary>Ring length R (slots per head before the mirror), or the context length when nothing wraps.</summary>
    public int Capacity { get; }
    public bool Wraps { get; }
    public KvStorage Keys { get; }
    public KvStorage Values { get; }

    public KvCache(int layer, int kvHeads, int headDim, int contextLength, int window, int maxBatch,
        KvStorage.Factory keys, KvStorage.Factory values) : base(layer)
    {
        Window = window;
        (Capacity, Wraps) = Slots(contextLength, window, maxBatch);
        int rows = Wraps ? 2 * Capacity : Capacity;
        Keys = keys(kvHeads, rows, headDim);
        Values = values(kvHeads, rows, headDim);
    }

    /// <summary>The cache of an attention layer with these options, in the session's element types.</summary>
    public static KvCache For(Session s, int layer, AttentionOptions o) =>
        new(layer, o.KvHeads, o.HeadDim, s.ContextLength, o.Window, s.MaxBatch, s.KeyStorage, s.ValueStorage);

    public override string Kind => Window > 0 ? "kv-window" : "kv";
    public override long Bytes => Keys.Bytes + Values.Bytes;
    // Nothing to clear: attention reads only slots written since the reset.
    public override void Reset() { }

    /// <summary>(R, wraps) for a cache of <paramref name="contextLength"/> positions.</summary>
    public static (int Slots, bool Wraps) Slots(int contextLength, int window, int maxBatch)
    {
        if (window <= 0) return (contextLength, false);
        long ring = (long)window + System.Math.Max(1, maxBatch) - 1;
        return ring >= contextLength ? (contextLength, false) : ((int)ring, true);
    }

    /// <summary>Rows per head a cache allocates (the ring and its mirror, or the context).</summary>
    public static long Rows(int contextLength, int window, int maxBatch)
    {
        var (slots, wraps) = Slots(contextLength, window, maxBatch);
        return wraps ? 2L * slots : slots;
    }

    /// <summary>Stores one token's keys and values (kvHeads × headDim each) for position <paramref name="pos"/>.</summary>
    public void Store(int pos, ReadOnlySpan<float> k, ReadOnlySpan<float> v)
    {
        int hd = Keys.HeadDim;
        var (slot, mirror) = RowsOf(pos);
        for (int h = 0; h < Keys.Heads; h++)
        {
            Keys.Write(h, slot, k.Slice(h * hd, hd));
            Values.Write(h, slot, v.Slice(h * hd, hd));
            if (mirror >= 0)
            {
                Keys.Write(h, mirror, k.Slice(h * hd, hd));
                Values.Write(h, mirror, v.Slice(h * hd, hd));
            }
        }
    }

    /// <summary>The cache rows position <paramref name="pos"/> is stored in: its slot, and in a ring (window) the
    /// mirror row Capacity further on that keeps every window contiguous (−1 when the cache does not wrap).</summary>
    public (int Slot, int Mirror) RowsOf(int pos)
    {
        int slot = Wraps ? pos % Capacity : pos;
        return (slot, Wraps ? slot + Capacity : -1);
    }

    /// <summary>The positions a token at <paramref name="pos"/> attends to, as (first position, count),
    /// and the slot of the first one (the rest follow contiguously).</summary>
    public (int First, int Count, int Slot) Visible(int pos)
    {
        int first = Window > 0 ? System.Math.Max(0, pos - Window + 1) : 0;
        return (first, pos - first + 1, Wraps ? first % Capacity : first);
    }
}
