using MicroLm.Generation;
using MicroLm.Math;
using MicroLm.Tensors.Quants;

namespace MicroLm.Models;

/// <summary>What one attention layer computes, given by its architecture: heads, grouped-query KV heads
/// (query head h reads KV head h / (heads / kvHeads)), the score scale (1/√headDim for most families,
/// 1 for GPT-Neo), the window (0: every earlier position) and the rotary embedding (null: none).</summary>
internal sealed record AttentionOptions(int Heads, int KvHeads, int HeadDim, float Scale, int Window, Rope? Rope)
{
    public int QueryDim => Heads * HeadDim;
    public int KvDim => KvHeads * HeadDim;

    /// <summary>LLaMA's and GPT-NeoX's: scale 1/√headDim over every position.</summary>
    public static AttentionOptions Standard(ModelConfig c, Rope? rope) =>
        new(c.Heads, c.KvHeads, c.HeadDim, 1f / MathF.Sqrt(c.HeadDim), 0, rope);
}

/// <summary>Where a batch's queries, keys or values are: token t's row starts at t·Stride + Offset
/// (separate buffers, or slices of one fused QKV buffer).</summary>
internal readonly record struct BatchRows(float[] Buffer, int Stride, int Offset)
{
    public Span<float> Row(int t, int width) => Buffer.AsSpan(t * Stride + Offset, width);
}

/// <summary>Causal self-attention of a batch of tokens over one layer's <see cref="KvCache"/>:
/// rotary embedding of q and k (if the options have one), k and v into the cache, then each (token, head)
/// pair's softmax(q·K·scale)·V over the positions it sees. Per-token steps go one token per thread and
/// the (token, head) pairs are split across threads, each owned by one thread, so neither the thread
/// count nor the batch changes the bits.</summary>
internal sealed class AttentionBatch
{
    private readonly Session _session;
    private readonly TokenBatch _batch;
    private readonly float[][] _scores;   // per thread: the most positions a token sees
    private readonly Action<int, int> _attendJob;
    private readonly Action<int> _storeStep;
    // The arguments of the call in progress (the team's jobs read them).
    private AttentionOptions _options = null!;
    private KvCache _cache = null!;
    private BatchRows _q, _k, _v;
    private int _count, _startPos;

    /// <summary>Per token: heads × headDim attention outputs (the input of the output projection).</summary>
    public Activation[] Output { get; }

    public AttentionBatch(Session s, TokenBatch batch, int maxQueryDim)
    {
        _session = s;
        _batch = batch;
        Output = TokenBatch.Activations(batch.MaxTokens, maxQueryDim);
        _scores = Enumerable.Range(0, s.Team.Count).Select(_ => new float[s.ContextLength]).ToArray();
        _attendJob = AttendPart;
        _storeStep = StoreToken;
    }

    /// <summary>Attention of the batch's tokens (positions startPos..) with queries, keys and values in
    /// <paramref name="q"/>, <paramref name="k"/>, <paramref name="v"/> (biases already added; q and k are
    /// rotated in place) into <see cref="Output"/>.</summary>
    public void Run(AttentionOptions options, KvCache cache, BatchRows q, BatchRows k, BatchRows v)
    {
        _options = options; _cache = cache; _q = q; _k = k; _v = v;
        _count = _batch.Count; _startPos = _batch.StartPos;
        if (!TryCompiledStore()) _session.ForEachToken(_count, _storeStep);
        if (!TryCompiled()) _session.Team.Run(_attendJob);
        for (int t = 0; t < _count; t++) Output[t].Invalidate();
    }

    /// <summary>The browser's compiled WebAssembly kernel for F32 caches, where a host installed one: every
    /// (token, head) pair in one call, each exactly as <see cref="Head"/> (same bits).</summary>
    private bool TryCompiled()
    {
        if (!Tensors.Wasm.CompiledKernels.Active || _cache.Keys is not F32KvStorage keys || _cache.Values is not F32KvStorage values) return false;
        var o = _options;
        _compiledTable ??= new int[3 * _batch.MaxTokens];
        for (int t = 0; t < _count; t++)
        {
            var (_, count, slot) = _cache.Visible(_startPos + t);
            _compiledTable[3 * t + 1] = slot;
            _compiledTable[3 * t + 2] = count;
        }
        return Tensors.Wasm.CompiledKernels.TryAttentionBatch(_q.Buffer, _q.Stride, _q.Offset, keys.Raw(0, 0).Data, values.Raw(0, 0).Data, keys.Rows,
            _compiledTable, Output, _count, o.Heads, o.Heads / o.KvHeads, o.HeadDim, o.Scale, _scores[0]);
    }

    private int[]? _compiledTable;

    /// <summary><see cref="StoreToken"/> for every token in one call of the browser's compiled kernel (F32 caches),
    /// where a host installed one: the same rotations and copies, so the same bits.</summary>
    private bool TryCompiledStore()
    {
        if (!Tensors.Wasm.CompiledKernels.Active || _cache.Keys is not F32KvStorage keys || _cache.Values is not F32KvStorage values) return false;
        var o = _options;
        int half = 0;
        bool neox = false;
        if (o.Rope is { } rope)
        {
            (half, neox) = (rope.Dimensions / 2, rope.NeoxStyle);
            if (_batch.Cos(0).Length != half) return false;
        }
        _storeTable ??= new int[2 * _batch.MaxTokens];
        for (int t = 0; t < _count; t++)
        {
            (_storeTable[2 * t], _storeTable[2 * t + 1]) = _cache.RowsOf(_startPos + t);
        }
        return Tensors.Wasm.CompiledKernels.TryRopeStore(_q.Buffer, _q.Stride, _q.Offset, _k.Buffer, _k.Stride, _k.Offset, _v.Buffer, _v.Stride, _v.Offset,
            o.Heads, o.KvHeads, o.HeadDim, half, neox, _batch.CosRows, _batch.SinRows, keys.Raw(0, 0).Data, values.Raw(0, 0).Data, keys.Rows, _storeTable, _count);
    }

    private int[]? _storeTable;

    /// <summary>Rotary embedding of token t's q and k (if any), then its k and v into the cache.</summary>
    private void StoreToken(int t)
    {
        var o = _options;
        var q = _q.Row(t, o.QueryDim);
        var k = _k.Row(t, o.KvDim);
        if (o.Rope is { } rope)
        {
            ReadOnlySpan<float> cos = _batch.Cos(t), sin = _batch.Sin(t);
            rope.Apply(q, o.Heads, o.HeadDim, cos, sin);
            rope.Apply(k, o.KvHeads, o.HeadDim, cos, sin);
        }
        _cache.Store(_startPos + t, k, _v.Row(t, o.KvDim));
    }

    private void AttendPart(int part, int parts)
    {
        var o = _options;
        int hd = o.HeadDim, group = o.Heads / o.KvHeads;
        // Interleaved (token, head) pairs: a later token sees more positions, so contiguous slices would
        // give the last part most of the causal work; each pair is still computed whole by one part.
        for (int i = part; i < _count * o.Heads; i += parts)
        {
            int t = i / o.Heads, h = i % o.Heads;
            Head(_q.Row(t, o.QueryDim).Slice(h * hd, hd), h / group, _startPos + t, _scores[part], Output[t].Values.Slice(h * hd, hd));
        }
    }

    /// <summary>One query head at <paramref name="pos"/>: output = softmax(q·K·scale) · V over the positions it sees.</summary>
    private void Head(ReadOnlySpan<float> q, int kvHead, int pos, float[] scoreBuffer, Span<float> output)
    {
        var (_, count, slot) = _cache.Visible(pos);
        var scores = scoreBuffer.AsSpan(0, count);
        // The browser's compiled WebAssembly kernel for F32 caches, where a host installed one (same bits).
        if (_cache.Keys is F32KvStorage keys && _cache.Values is F32KvStorage values)
        {
            var (k, at) = keys.Raw(kvHead, slot);
            if (Tensors.Wasm.CompiledKernels.TryAttention(q, k, values.Raw(kvHead, slot).Data, at, count, q.Length, _options.Scale, scores, output)) return;
        }
        _cache.Keys.Scores(kvHead, q, slot, _options.Scale, scores);
        DetMath.SoftmaxInPlace(scores);
        _cache.Values.WeightedSum(kvHead, scores, slot, output);
    }
}
