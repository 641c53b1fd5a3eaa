namespace MicroLm.Generation;

/// <summary>A fixed team of threads that run one job split into parts: part i of n is always the
/// same slice of the work, computed whole by one thread, so results never depend on the thread count
/// or on timing. The requested count sets the parts; the threads are as many as the machine has
/// processors at most (each runs parts t, t+T, t+2T, …), so asking for 1,000 threads costs nothing
/// and still computes the same bits as 1. Workers spin briefly between jobs (a token's ~40 matmuls
/// come microseconds apart) and sleep when idle longer; the caller spins only as long as that has
/// been paying off, and when all live teams together have more threads than processors (several
/// sessions at once) nobody spins: a spinning thread never holds a core another team's working thread
/// needs. Nothing is allocated per call.</summary>
internal sealed class ThreadTeam : IDisposable
{
    private const int SpinIterations = 20000; // ~tens of microseconds before a worker goes to sleep

    private readonly Thread[] _workers;
    private readonly SemaphoreSlim[] _wake;
    private readonly int[] _sleeping;
    private Action<int, int>? _job;
    private int _generation;
    private int _pending;
    private volatile bool _stopping;
    private readonly ManualResetEventSlim _done = new(false, 0);
    private int _disposed;
    private const int MinWaitSpin = 64;
    private int _waitSpin = SpinIterations;
    // The first exception of a job's parts (any thread): Run rethrows it on the caller once every part has ended,
    // so a failing part is an exception of the evaluation, not the end of the process.
    private System.Runtime.ExceptionServices.ExceptionDispatchInfo? _failure;

    /// <summary>Threads of all live teams, callers included; above the processor count nobody spins.</summary>
    private static int s_liveThreads;
    private static bool Oversubscribed => Volatile.Read(ref s_liveThreads) > Environment.ProcessorCount;

    /// <summary>Most parts a job is split into (per-part scratch, such as attention scores, is allocated per part).</summary>
    public const int MaxParts = 64;

    /// <summary>Parts each job is split into: the requested thread count, at most <see cref="MaxParts"/>.</summary>
    public int Count { get; }
    /// <summary>Threads that run them, the caller included: at most the processor count (1 in the browser).</summary>
    public int Threads { get; }

    /// <param name="threads">Requested threads: the job is split into this many parts (at most
    /// <see cref="MaxParts"/>), run by at most <see cref="Environment.ProcessorCount"/> threads.</param>
    public ThreadTeam(int threads)
    {
        Count = System.Math.Clamp(threads, 1, MaxParts);
        Threads = System.Math.Min(Count, System.Math.Max(1, Environment.ProcessorCount));
        if (OperatingSystem.IsBrowser() || OperatingSystem.IsWasi()) Threads = 1;
        Interlocked.Add(ref s_liveThreads, Threads);
        _workers = new Thread[Threads - 1];
        _wake = new SemaphoreSlim[Threads - 1];
        _sleeping = new int[Threads - 1];
        for (int i = 0; i < _workers.Length; i++)
        {
            int part = i + 1;
            _wake[i] = new SemaphoreSlim(0);
            _workers[i] = new Thread(() => Work(part)) { IsBackground = true, Name = $"microlm-{part}" };
            _workers[i].Start();
        }
    }

    /// <summary>Runs job(part, parts) for every part in 0..Count-1 and returns when all are done.</summary>
    public void Run(Action<int, int> job)
    {
        if (Threads == 1)
        {
            for (int p = 0; p < Count; p++) job(p, Count);
            return;
        }
        _job = job;
        Volatile.Write(ref _pending, Threads - 1);
        Interlocked.Increment(ref _generation);
        for (int i = 0; i < _workers.Length; i++)
            if (Interlocked.Exchange(ref _sleeping[i], 0) == 1) _wake[i].Release();
        RunPartsCatching(job, 0);
        // Spin for the other parts only as long as that has been paying off: a wait that had to block
        // (the workers were descheduled: a busy machine) halves the spin, one that did not doubles it.
        int budget = Oversubscribed ? 0 : _waitSpin;
        int spins = 0;
        while (spins < budget && Volatile.Read(ref _pending) != 0) { Thread.SpinWait(4); spins++; }
        if (Volatile.Read(ref _pending) == 0)
        {
            if (spins * 2 > budget) _waitSpin = System.Math.Min(SpinIterations, System.Math.Max(MinWaitSpin, budget * 2));
            ThrowFailure();
            return;
        }
        _waitSpin = System.Math.Max(MinWaitSpin, budget / 2);
        // A Set left over from the previous job (a worker signals after Run saw the count reach zero) can
        // end a wait early: look again, and clear it before waiting once more.
        while (Volatile.Read(ref _pending) != 0)
        {
            _done.Wait();
            if (Volatile.Read(ref _pending) != 0) _done.Reset();
        }
        ThrowFailure();
    }

    private void ThrowFailure()
    {
        if (Interlocked.Exchange(ref _failure, null) is { } failure) failure.Throw();
    }

    private void RunPartsCatching(Action<int, int> job, int thread)
    {
        try { RunParts(job, thread); }
        catch (Exception e) { Interlocked.CompareExchange(ref _failure, System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e), null); }
    }

    /// <summary>The slice [start, end) of <paramref name="total"/> items that part <paramref name="part"/> of <paramref name="parts"/> owns.</summary>
    public static (int Start, int End) Slice(int total, int part, int parts) =>
        ((int)((long)total * part / parts), (int)((long)total * (part + 1) / parts));

    private void RunParts(Action<int, int> job, int thread)
    {
        for (int p = thread; p < Count; p += Threads) job(p, Count);
    }

    private void Work(int part)
    {
        int index = part - 1, seen = 0;
        while (true)
        {
            int spins = 0;
            while (Volatile.Read(ref _generation) == seen && !_stopping)
            {
                if (++spins < SpinIterations && !Oversubscribed) { Thread.SpinWait(4); continue; }
                // Announce sleep, then look again so a job published meanwhile is not missed. The announcement must be
                // a full fence: a plain store may be ordered after the load below (store-load reordering, x64 too), and
                // then Run can publish a job, find the flag still clear, not wake this thread, and wait for ever.
                Interlocked.Exchange(ref _sleeping[index], 1);
                if (Volatile.Read(ref _generation) != seen || _stopping)
                {
                    // If Run already claimed the flag it will release the semaphore: consume that.
                    if (Interlocked.Exchange(ref _sleeping[index], 0) == 0) _wake[index].Wait();
                    break;
                }
                _wake[index].Wait();
                spins = 0;
            }
            if (_stopping) return;
            seen = Volatile.Read(ref _generation);
            RunPartsCatching(_job!, part);
            if (Interlocked.Decrement(ref _pending) == 0) _done.Set();
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Interlocked.Add(ref s_liveThreads, -Threads);
        _stopping = true;
        for (int i = 0; i < _wake.Length; i++)
            if (Interlocked.Exchange(ref _sleeping[i], 0) == 1) _wake[i].Release();
    }
}
