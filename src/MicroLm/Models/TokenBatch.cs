using MicroLm.Generation;
using MicroLm.Math;
using MicroLm.Tensors;
using MicroLm.Tensors.Quants;

namespace MicroLm.Models;

/// <summary>What every architecture keeps for a batch of up to maxBatch tokens (token t's row of a batch
/// buffer at t·width): the residual stream, the normed activations, the rotary angles and attention, and
/// the state its per-token steps read (token ids, start position, current layer). The steps are delegates
/// made once per session and run by <see cref="Session.ForEachToken"/>, so a forward pass allocates nothing.</summary>
internal abstract class TokenBatch
{
    public readonly float[] X;            // residual stream, batch × dim
    public readonly float[] Cos, Sin;     // batch × rope pairs
    public readonly Activation[] Normed;  // the normed residual of each token, input of the next matmuls
    public readonly AttentionBatch Attention;
    public readonly int[] Tokens;         // the batch's token ids
    public int Layer, StartPos;
    private readonly int _dim;
    private readonly Action<int> _embed;

    protected TokenBatch(Session s, int maxBatch, WeightMatrix embedding, Rope rope)
    {
        var c = s.Config;
        _dim = c.Dim;
        int half = c.RopeDims / 2;
        X = new float[maxBatch * c.Dim];
        Cos = new float[maxBatch * half];
        Sin = new float[maxBatch * half];
        Normed = Activations(maxBatch, c.Dim);
        Attention = new AttentionBatch(s, maxBatch);
        Tokens = new int[maxBatch];
        _embed = t =>
        {
            embedding.ReadRow(Tokens[t], Row(X, t, _dim));
            rope.Angles(StartPos + t, Row(Cos, t, half), Row(Sin, t, half));
        };
    }

    public static Activation[] Activations(int count, int length) =>
        Enumerable.Range(0, count).Select(_ => new Activation(length)).ToArray();

    public static Span<float> Row(float[] batch, int t, int width) => batch.AsSpan(t * width, width);

    /// <summary>Starts a forward pass over <paramref name="tokens"/> at <paramref name="startPos"/>: each
    /// token's embedding into X and its rotary angles.</summary>
    public void Begin(Session s, ReadOnlySpan<int> tokens, int startPos)
    {
        StartPos = startPos;
        tokens.CopyTo(Tokens);
        s.ForEachToken(tokens.Length, _embed);
    }

    /// <summary>Normed[output] = RmsNorm(X row <paramref name="row"/>) ⊙ weight.</summary>
    public void RmsNorm(int row, int output, ReadOnlySpan<float> weight, float eps)
    {
        Kernels.RmsNorm(Row(X, row, _dim), weight, eps, Normed[output].Span);
        Normed[output].Invalidate();
    }

    /// <summary>Normed[output] = LayerNorm(X row <paramref name="row"/>) ⊙ weight + bias.</summary>
    public void LayerNorm(int row, int output, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, float eps)
    {
        Kernels.LayerNorm(Row(X, row, _dim), weight, bias, eps, Normed[output].Span);
        Normed[output].Invalidate();
    }
}
