using System.Buffers.Binary;
using MicroLm.Generation;
using MicroLm.Math;
using MicroLm.Models;

namespace MicroLm.Quality;

/// <summary>Perplexity as llama.cpp's perplexity tool computes it: the tokens are cut into chunks of
/// n_ctx, each evaluated from an empty cache with its first token replaced by BOS (when the vocabulary
/// adds one), and only the second half of each chunk is scored (positions n_ctx/2 … n_ctx−2 predicting
/// the next token), so every scored token has at least n_ctx/2 tokens of context.
///
/// Every sum runs in token order and every exp/log is <see cref="DetMath"/>'s, so the numbers are the
/// same bits on every platform and thread count (llama.cpp's own totals depend on how its threads
/// interleave). Per token the arithmetic mirrors llama.cpp's (float exp of logit − max summed in double,
/// log in double), so the two agree to the rounding of their logits.</summary>
internal static class Perplexity
{
    public sealed record Result(double Ppl, double PplUncertainty, int Count, double[] ChunkPpl);

    /// <summary>One scored token's KL divergence and Δp, plus the running sums llama.cpp keeps.</summary>
    public sealed class KldStats
    {
        public double SumNll, SumNll2, SumNllBase, SumNllBase2, SumNllNllBase, SumKld, SumKld2, SumPDiff, SumPDiff2, SumPDiff4;
        public float MaxPDiff;
        public long SameTop, Count;
        public readonly List<float> Kld = [], PDiff = [];
    }

    /// <summary>Chunks available in <paramref name="tokenCount"/> tokens at context <paramref name="nCtx"/>,
    /// limited to <paramref name="maxChunks"/> (negative: all); llama.cpp's rule of at least two chunks.</summary>
    public static int Chunks(int tokenCount, int nCtx, int maxChunks)
    {
        if (nCtx < 4) throw new MicroLmException($"the context must be at least 4 tokens, got {nCtx}");
        if (tokenCount < 2 * nCtx)
            throw new MicroLmException($"you need at least {2 * nCtx} tokens to evaluate perplexity with a context of {nCtx}; the text tokenizes to only {tokenCount}");
        int max = tokenCount / nCtx;
        return maxChunks < 0 ? max : System.Math.Min(maxChunks, max);
    }

    /// <summary>Evaluates chunk <paramref name="chunk"/> and hands each scored position's logits (positions
    /// first … nCtx−2) with the token that follows it to <paramref name="score"/>.</summary>
    public static void EvaluateChunk(Session session, Model model, ReadOnlySpan<int> tokens, int chunk, int nCtx, Action<int, int, ReadOnlySpan<float>> score)
    {
        int first = nCtx / 2;
        var input = tokens.Slice(chunk * nCtx, nCtx).ToArray();
        if (model.Tokenizer.AddBos && model.Tokenizer.BosId >= 0) input[0] = model.Tokenizer.BosId;
        session.Reset();
        session.Evaluate(input, onLogits: (pos, _, logits) =>
        {
            if (pos >= first && pos < nCtx - 1) score(pos - first, input[pos + 1], logits);
        });
    }

    private static float Max(ReadOnlySpan<float> logits)
    {
        float max = logits[0];
        for (int i = 1; i < logits.Length; i++) max = System.Math.Max(max, logits[i]);
        return max;
    }

    private static double SumExp(ReadOnlySpan<float> logits, float max)
    {
        double sum = 0;
        foreach (float l in logits) sum += DetMath.Exp(l - max);
        return sum;
    }

    /// <summary>−log p(token) as the plain perplexity run computes it.</summary>
    public static double NegLogProb(ReadOnlySpan<float> logits, int token)
    {
        float max = Max(logits);
        return -((double)(logits[token] - max) - DetMath.LogD(SumExp(logits, max)));
    }

    /// <summary>Entries (uint16) per scored token in a log-probability file: two floats, then the vocabulary padded to even.</summary>
    public static int EntriesPerToken(int vocab) => 2 * ((vocab + 1) / 2) + 4;

    /// <summary>llama.cpp's 16-bit log-probabilities of one position (the --kl-divergence-base file):
    /// scale = (max − min)/65535 and the smallest log-probability as floats, then each logit's offset above
    /// min (min at most 16 below max; anything lower stores 0) in units of scale. Returns −log p(token).</summary>
    public static double EncodeLogProbs(ReadOnlySpan<float> logits, int token, Span<ushort> output)
    {
        float max = logits[0], min = logits[0];
        for (int i = 1; i < logits.Length; i++)
        {
            max = System.Math.Max(max, logits[i]);
            min = System.Math.Min(min, logits[i]);
        }
        min = System.Math.Max(min, max - 16);
        float logSumExp = (float)DetMath.LogD(SumExp(logits, max));
        float minLogProb = min - max - logSumExp;
        float scale = (max - min) / 65535f;
        WriteFloat(output, 0, scale);
        WriteFloat(output, 2, minLogProb);
        var q = output[4..];
        if (scale != 0)
        {
            float inv = 1 / scale;
            for (int i = 0; i < logits.Length; i++) q[i] = logits[i] > min ? (ushort)NearestInt(inv * (logits[i] - min)) : (ushort)0;
        }
        else q[..logits.Length].Clear();
        for (int i = logits.Length; i < q.Length; i++) q[i] = 0;
        return max + logSumExp - logits[token];
    }

    /// <summary>Adds one position's comparison with the base model's stored log-probabilities to <paramref name="s"/>.</summary>
    public static void AddKld(ReadOnlySpan<float> logits, ReadOnlySpan<ushort> baseLogProbs, int token, KldStats s)
    {
        float max = logits[0];
        int imax = 0;
        for (int i = 1; i < logits.Length; i++)
            if (logits[i] > max) { max = logits[i]; imax = i; }
        float logSumExp = (float)DetMath.LogD(SumExp(logits, max));
        float scale = ReadFloat(baseLogProbs, 0), minLogProb = ReadFloat(baseLogProbs, 2);
        var q = baseLogProbs[4..];

        float nll = max + logSumExp - logits[token];
        s.SumNll += nll;
        s.SumNll2 += nll * nll;
        float nllBase = -(scale * q[token] + minLogProb);
        s.SumNllBase += nllBase;
        s.SumNllBase2 += nllBase * nllBase;
        s.SumNllNllBase += nll * nllBase;

        max += logSumExp;
        double sum = 0;
        int imaxBase = -1;
        float pLogBaseMax = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            float pLogBase = scale * q[i] + minLogProb;
            if (i == 0 || pLogBase > pLogBaseMax) { pLogBaseMax = pLogBase; imaxBase = i; }
            if (pLogBase > -16f)
            {
                float pBase = DetMath.Exp(pLogBase);
                sum += pBase * (pLogBase - logits[i] + max);
            }
        }
        s.SumKld += sum;
        s.SumKld2 += sum * sum;
        s.Count++;
        if (imax == imaxBase) s.SameTop++;

        float pDiff = DetMath.Exp(-nll) - DetMath.Exp(-nllBase);
        s.SumPDiff += pDiff;
        double pDiff2 = pDiff * pDiff;
        s.SumPDiff2 += pDiff2;
        s.SumPDiff4 += pDiff2 * pDiff2;
        s.MaxPDiff = System.Math.Max(s.MaxPDiff, MathF.Abs(pDiff));
        s.Kld.Add((float)sum);
        s.PDiff.Add(pDiff);
    }

    private static int NearestInt(float f)
    {
        float v = f + 12582912f;
        return (BitConverter.SingleToInt32Bits(v) & 0x007fffff) - 0x00400000;
    }

    private static void WriteFloat(Span<ushort> at, int index, float f)
    {
        uint bits = BitConverter.SingleToUInt32Bits(f);
        at[index] = (ushort)bits;
        at[index + 1] = (ushort)(bits >> 16);
    }

    private static float ReadFloat(ReadOnlySpan<ushort> at, int index) =>
        BitConverter.UInt32BitsToSingle(at[index] | (uint)at[index + 1] << 16);

    /// <summary>Mean and its standard error, as llama.cpp's mean_and_uncertainty.</summary>
    public static (double Mean, double Uncertainty) MeanAndUncertainty(double sum, double sum2, long count)
    {
        if (count < 1) return (0, 0);
        double f = sum / count;
        double df = sum2 / count - f * f;
        df = df > 0 && count > 10 ? System.Math.Sqrt(df / (count - 1)) : 0;
        return (f, df);
    }

    public static double Covariance(double sumA, double sumB, double sumAB, long count)
    {
        if (count < 10) return 0;
        double v = sumAB / count - (sumA / count) * (sumB / count);
        return v / (count - 1);
    }

    /// <summary>llama.cpp's percentile of a sorted list (linear between neighbours, in float).</summary>
    public static float Percentile(IReadOnlyList<float> sorted, float fraction)
    {
        if (fraction <= 0) return sorted[0];
        if (fraction >= 1) return sorted[^1];
        float p = fraction * (sorted.Count - 1);
        int ip = (int)p;
        p -= ip;
        return (1 - p) * sorted[ip] + p * sorted[System.Math.Min(ip + 1, sorted.Count - 1)];
    }

    public static float Median(IReadOnlyList<float> sorted) =>
        sorted.Count % 2 == 0 ? 0.5f * (sorted[sorted.Count / 2] + sorted[sorted.Count / 2 - 1]) : sorted[sorted.Count / 2];
}

/// <summary>The base model's log-probabilities in llama.cpp's --kl-divergence-base format: "_logits_",
/// n_ctx, n_vocab, n_chunk (int32), the n_chunk·n_ctx evaluated token ids (int32), then per chunk and scored
/// position <see cref="Perplexity.EntriesPerToken"/> uint16 entries; all little-endian.</summary>
internal sealed class LogProbFile
{
    public const string Magic = "_logits_";
    public int NCtx { get; }
    public int Vocab { get; }
    public int NChunk { get; }
    public int[] Tokens { get; }
    private readonly ReadOnlyMemory<byte> _data;
    private readonly long _dataOffset;

    private LogProbFile(int nCtx, int vocab, int nChunk, int[] tokens, ReadOnlyMemory<byte> data, long dataOffset)
    {
        NCtx = nCtx; Vocab = vocab; NChunk = nChunk; Tokens = tokens; _data = data; _dataOffset = dataOffset;
    }

    public int ScoredPerChunk => NCtx - 1 - NCtx / 2;

    public static void WriteHeader(Stream s, int nCtx, int vocab, int nChunk, ReadOnlySpan<int> tokens)
    {
        Span<byte> b = stackalloc byte[4];
        s.Write("_logits_"u8);
        foreach (int v in new[] { nCtx, vocab, nChunk }) { BinaryPrimitives.WriteInt32LittleEndian(b, v); s.Write(b); }
        foreach (int t in tokens[..(nChunk * nCtx)]) { BinaryPrimitives.WriteInt32LittleEndian(b, t); s.Write(b); }
    }

    public static LogProbFile Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 20 || !bytes.AsSpan(0, 8).SequenceEqual("_logits_"u8))
            throw new MicroLmException($"'{path}' does not look like a file of base-model log-probabilities (--kl-divergence-base)");
        int nCtx = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(8));
        int vocab = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(12));
        int nChunk = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(16));
        if (nCtx < 4 || vocab < 1 || nChunk < 1 || nCtx > 1 << 24 || vocab > 1 << 24 || nChunk > 1 << 24)
            throw new MicroLmException($"'{path}': implausible header (n_ctx {nCtx}, n_vocab {vocab}, n_chunk {nChunk})");
        long tokensEnd = 20 + 4L * nCtx * nChunk;
        long expected = tokensEnd + 2L * nChunk * (nCtx - 1 - nCtx / 2) * Perplexity.EntriesPerToken(vocab);
        if (bytes.LongLength != expected)
            throw new MicroLmException($"'{path}' holds {bytes.LongLength} bytes, but its header (n_ctx {nCtx}, n_vocab {vocab}, n_chunk {nChunk}) needs {expected}");
        var tokens = new int[nCtx * nChunk];
        for (int i = 0; i < tokens.Length; i++) tokens[i] = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(20 + 4 * i));
        return new LogProbFile(nCtx, vocab, nChunk, tokens, bytes, tokensEnd);
    }

    /// <summary>The stored entries of scored position <paramref name="index"/> of chunk <paramref name="chunk"/>.</summary>
    public ReadOnlySpan<ushort> Entries(int chunk, int index)
    {
        int nv = Perplexity.EntriesPerToken(Vocab);
        long offset = _dataOffset + 2L * nv * ((long)chunk * ScoredPerChunk + index);
        return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(_data.Span.Slice(checked((int)offset), 2 * nv));
    }
}
