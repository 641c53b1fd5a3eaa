using System.Diagnostics;
using MicroLm.Generation;
using MicroLm.Models;
using MicroLm.Tensors;
using MicroLm.Tensors.Quants;

namespace MicroLm;

/// <summary>The mutable half of inference: one sequence's layer memory (KV caches, sliding windows,
/// recurrent states), its position, scratch buffers and threads. A <see cref="Model"/> is shared; each
/// session belongs to one caller at a time.</summary>
public sealed partial class Session : IDisposable
{
    public Model Model { get; }
    internal ModelConfig Config => Model.Config;
    public int ContextLength { get; }
    public int MaxBatch { get; }
    /// <summary>Number of positions evaluated so far (the next token goes at this position).</summary>
    public int Position { get; private set; }
    internal ThreadTeam Team { get; }

    internal float[] Logits { get; }
    /// <summary>Element storage of the KV caches' keys and values (F32 unless the caller chose otherwise).</summary>
    internal KvStorage.Factory KeyStorage { get; }
    internal KvStorage.Factory ValueStorage { get; }
    /// <summary>The architecture's per-session part: every layer's memory and the scratch of a forward pass.</summary>
    internal ForwardPass Pass { get; }
    internal IReadOnlyList<LayerMemory> Memory => Pass.Memory;

    /// <summary>Bytes of every layer's memory (KV caches, windows, recurrent states) this session allocated.</summary>
    public long MemoryBytes => Memory.Sum(m => m.Bytes);

    private WeightMatrix? _matmulWeight;
    private Activation[]? _matmulInput;
    private float[]? _matmulOutput;
    private int _matmulCount;
    private readonly Action<int, int> _matmulJob, _prepareJob, _tokenJob;
    private Action<int>? _tokenStep;
    private int _tokenCount;

    internal Session(Model model, int contextLength, int threads, int maxBatch,
        KvStorage.Factory? keyStorage = null, KvStorage.Factory? valueStorage = null)
    {
        Model = model;
        var c = model.Config;
        ContextLength = contextLength > 0 ? contextLength : c.ContextLength;
        // A batch longer than the context can never be evaluated: capping it keeps the scratch and
        // logits O(min(batch, context)).
        MaxBatch = System.Math.Clamp(maxBatch, 1, ContextLength);
        if ((long)MaxBatch * c.VocabSize > Array.MaxLength)
            throw new MicroLmException($"a batch of {MaxBatch} tokens over a vocabulary of {c.VocabSize} is too large for one logits buffer (use a smaller batch)");
        Team = new ThreadTeam(threads);
        KeyStorage = keyStorage ?? KvStorage.F32;
        ValueStorage = valueStorage ?? KvStorage.F32;
        Logits = new float[MaxBatch * c.VocabSize];
        _matmulJob = MatMulPart;
        _prepareJob = PreparePart;
        _tokenJob = TokenPart;
        Pass = model.Architecture.CreatePass(this);
    }

    public int VocabSize => Config.VocabSize;

    /// <summary>Logits of the last evaluated token.</summary>
    public ReadOnlySpan<float> LastLogits => Logits.AsSpan(_lastRow * VocabSize, VocabSize);
    private int _lastRow;

    /// <summary>Evaluates <paramref name="tokens"/> at the next positions, in chunks of at most
    /// <paramref name="batch"/> (default: MaxBatch). Chunking never changes the bits. If given,
    /// <paramref name="onLogits"/> sees each position's logits. Returns the last token's logits.
    /// <paramref name="lastLogitsOnly"/>: compute the classifier for the last token only (as llama.cpp
    /// does for a prompt); the returned logits are the same bits, the other positions' are skipped.</summary>
    public ReadOnlySpan<float> Evaluate(ReadOnlySpan<int> tokens, int batch = 0, LogitsHandler? onLogits = null, bool lastLogitsOnly = false)
        => Evaluate(tokens, batch, onLogits, lastLogitsOnly, checkFile: true);

    /// <summary>Evaluates the next token of a generation loop (<see cref="Generator"/>): the file check runs only if
    /// the loop's consumer held the session for <see cref="PauseBeforeFileCheck"/> or longer since the last
    /// evaluation ended. Tokens decoded back to back are one evaluation to the check: the check is two fstat calls,
    /// and a gap of microseconds between forward passes is no more exposed than the passes themselves.</summary>
    internal ReadOnlySpan<float> EvaluateNext(ReadOnlySpan<int> tokens, LogitsHandler? onLogits)
        => Evaluate(tokens, 1, onLogits, lastLogitsOnly: false,
            checkFile: Stopwatch.GetElapsedTime(_evaluatedAt) >= PauseBeforeFileCheck);

    internal static readonly TimeSpan PauseBeforeFileCheck = TimeSpan.FromMilliseconds(1);

    private ReadOnlySpan<float> Evaluate(ReadOnlySpan<int> tokens, int batch, LogitsHandler? onLogits, bool lastLogitsOnly, bool checkFile)
    {
        // A session belongs to one thread at a time; two at once would mix their caches silently.
        if (Interlocked.Exchange(ref _evaluating, 1) != 0)
            throw new InvalidOperationException("this session is already evaluating on another thread; a session is used by one thread at a time (create a session per thread; the model can be shared)");
        try { return EvaluateCore(tokens, batch, onLogits, lastLogitsOnly, checkFile); }
        finally
        {
            _evaluatedAt = Stopwatch.GetTimestamp();
            Volatile.Write(ref _evaluating, 0);
        }
    }

    private int _evaluating;
    /// <summary>When the last evaluation ended (a <see cref="Stopwatch"/> timestamp).</summary>
    private long _evaluatedAt;

    private ReadOnlySpan<float> EvaluateCore(ReadOnlySpan<int> tokens, int batch, LogitsHandler? onLogits, bool lastLogitsOnly, bool checkFile)
    {
        if (tokens.Length == 0) throw new ArgumentException("no tokens to evaluate");
        if (checkFile) Model.File.CheckUnchanged(); // a mapped file truncated since the last evaluation would fault the process
        if (lastLogitsOnly && onLogits != null) throw new ArgumentException("onLogits needs every position's logits; it cannot be combined with lastLogitsOnly");
        if (Position + tokens.Length > ContextLength)
            throw new MicroLmException($"context is full: {Position} positions used, {tokens.Length} more requested, context length {ContextLength}");
        foreach (int t in tokens)
            if ((uint)t >= (uint)VocabSize) throw new MicroLmException($"token id {t} is outside the vocabulary of {VocabSize}");
        int chunk = batch <= 0 ? MaxBatch : System.Math.Min(batch, MaxBatch);
        for (int i = 0; i < tokens.Length; i += chunk)
        {
            int n = System.Math.Min(chunk, tokens.Length - i);
            bool final = i + n == tokens.Length;
            WantedLogits = !lastLogitsOnly ? LogitsWanted.All : final ? LogitsWanted.Last : LogitsWanted.None;
            Pass.Forward(tokens.Slice(i, n), Position);
            WantedLogits = LogitsWanted.All;
            if (lastLogitsOnly)
            {
                Position += n;
                RecordEvaluated(tokens.Slice(i, n));
                if (!final) continue;
                _lastRow = 0; // LogitRows put the only computed row first
                if (!Math.Kernels.AllFinite(LastLogits))
                    throw new MicroLmException($"the logits at position {Position - 1} contain NaN or infinity");
                break;
            }
            for (int t = 0; t < n; t++)
            {
                var logits = Logits.AsSpan(t * VocabSize, VocabSize);
                if (!Math.Kernels.AllFinite(logits))
                    throw new MicroLmException($"the logits at position {Position + t} contain NaN or infinity");
                onLogits?.Invoke(Position + t, tokens[i + t], logits);
            }
            Position += n;
            RecordEvaluated(tokens.Slice(i, n));
            _lastRow = n - 1;
        }
        return LastLogits;
    }

    /// <summary>Forgets the sequence: position 0 and every layer's memory cleared.</summary>
    public void Reset()
    {
        if (Volatile.Read(ref _evaluating) != 0)
            throw new InvalidOperationException("this session is evaluating on another thread; it cannot be reset meanwhile");
        foreach (var m in Memory) m.Reset();
        Position = 0;
        _tokens.Clear();
    }

    /// <summary>Which rows of the classifier the current Forward must compute.</summary>
    internal LogitsWanted WantedLogits { get; private set; }

    /// <summary>The tokens of a batch of <paramref name="n"/> whose logits the architecture computes
    /// (written from Logits[0] on): all, only the last, or none.</summary>
    internal (int First, int Count) LogitRows(int n) => WantedLogits switch
    {
        LogitsWanted.Last => (n - 1, 1),
        LogitsWanted.None => (n, 0),
        _ => (0, n),
    };

    /// <summary>output[t·rows + r] = w.row(r) · input[t], rows split across the team.</summary>
    internal void MatMul(WeightMatrix w, Activation[] input, int count, float[] output)
    {
        _matmulWeight = w; _matmulInput = input; _matmulOutput = output; _matmulCount = count;
        // A batch's activations are quantized by the team (each token by one thread) unless the step that wrote them
        // already did (TokenBatch's `next`); a single token by the caller.
        if (count > 1 && Team.Count > 1) { if (!Activation.Ready(w.Type.Kernel!, input, count)) Team.Run(_prepareJob); }
        else if (count == 1) WeightMatrix.PrepareOne(w, input);
        else WeightMatrix.Prepare(w, input, 0, count);
        Team.Run(_matmulJob);
    }

    /// <summary>Runs step(t) for each token t of a batch of <paramref name="n"/>: split across the team
    /// (each token by one thread, so the bits never depend on the thread count), or inline for one token.</summary>
    internal void ForEachToken(int n, Action<int> step)
    {
        if (n == 1 || Team.Count == 1)
        {
            for (int t = 0; t < n; t++) step(t);
            return;
        }
        _tokenStep = step; _tokenCount = n;
        Team.Run(_tokenJob);
    }

    private void TokenPart(int part, int parts)
    {
        var (start, end) = ThreadTeam.Slice(_tokenCount, part, parts);
        for (int t = start; t < end; t++) _tokenStep!(t);
    }

    private void PreparePart(int part, int parts)
    {
        var (start, end) = ThreadTeam.Slice(_matmulCount, part, parts);
        WeightMatrix.Prepare(_matmulWeight!, _matmulInput!, start, end);
    }

    private void MatMulPart(int part, int parts)
    {
        var w = _matmulWeight!;
        var (start, end) = ThreadTeam.Slice(w.Rows, part, parts);
        w.MatMul(_matmulInput!, _matmulCount, _matmulOutput!, start, end);
    }

    internal void CheckFinite(ReadOnlySpan<float> x, int layer)
    {
        if (!Math.Kernels.AllFinite(x))
            throw new MicroLmException($"NaN or infinity in the hidden state after layer {layer}");
    }

    public void Dispose() => Team.Dispose();
}

internal enum LogitsWanted { All, Last, None }

public delegate void LogitsHandler(int position, int token, ReadOnlySpan<float> logits);
