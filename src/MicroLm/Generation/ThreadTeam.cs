namespace MicroLm.Generation;

/// <summary>A fixed team of threads that run one job split into parts: part i of n is always the
/// same slice of the work, computed by one thread, so results never depend on the thread count or on
/// timing. Workers spin briefly between jobs (a token's ~40 matmuls come microseconds apart) and
/// sleep when idle longer. Nothing is allocated per call.</summary>
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

    public int Count { get; }

    public ThreadTeam(int threads)
    {
        Count = System.Math.Max(1, threads);
        if (Count > 1 && (OperatingSystem.IsBrowser() || OperatingSystem.IsWasi())) Count = 1;
        _workers = new Thread[Count - 1];
        _wake = new SemaphoreSlim[Count - 1];
        _sleeping = new int[Count - 1];
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
        if (Count == 1) { job(0, 1); return; }
        _job = job;
        Volatile.Write(ref _pending, Count - 1);
        Interlocked.Increment(ref _generation);
        for (int i = 0; i < _workers.Length; i++)
            if (Interlocked.Exchange(ref _sleeping[i], 0) == 1) _wake[i].Release();
        job(0, Count);
        var spin = new SpinWait();
        while (Volatile.Read(ref _pending) != 0) spin.SpinOnce(-1);
    }

    /// <summary>The slice [start, end) of <paramref name="total"/> items that part <paramref name="part"/> of <paramref name="parts"/> owns.</summary>
    public static (int Start, int End) Slice(int total, int part, int parts) =>
        ((int)((long)total * part / parts), (int)((long)total * (part + 1) / parts));

    private void Work(int part)
    {
        int index = part - 1, seen = 0;
        while (true)
        {
            int spins = 0;
            while (Volatile.Read(ref _generation) == seen && !_stopping)
            {
                if (++spins < SpinIterations) { Thread.SpinWait(4); continue; }
                // Announce sleep, then look again so a job published meanwhile is not missed.
                Volatile.Write(ref _sleeping[index], 1);
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
            _job!(part, Count);
            Interlocked.Decrement(ref _pending);
        }
    }

    public void Dispose()
    {
        _stopping = true;
        for (int i = 0; i < _wake.Length; i++)
            if (Interlocked.Exchange(ref _sleeping[i], 0) == 1) _wake[i].Release();
    }
}
