namespace MicroLm.Generation;

/// <summary>A fixed team of threads that run one job split into parts: part i of n is always the
/// same slice of the work, computed by one thread, so results never depend on the thread count or on
/// timing. Nothing is allocated per call.</summary>
public sealed class ThreadTeam : IDisposable
{
    private readonly Thread[] _workers;
    private readonly ManualResetEventSlim[] _go;
    private Action<int, int>? _job;
    private int _pending;
    private volatile bool _stopping;

    public int Count { get; }

    public ThreadTeam(int threads)
    {
        Count = System.Math.Max(1, threads);
        if (Count > 1 && (OperatingSystem.IsBrowser() || OperatingSystem.IsWasi())) Count = 1;
        _workers = new Thread[Count - 1];
        _go = new ManualResetEventSlim[Count - 1];
        for (int i = 0; i < _workers.Length; i++)
        {
            int part = i + 1;
            _go[i] = new ManualResetEventSlim(false, 2000);
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
        for (int i = 0; i < _go.Length; i++) _go[i].Set();
        job(0, Count);
        var spin = new SpinWait();
        while (Volatile.Read(ref _pending) != 0) spin.SpinOnce(-1);
    }

    /// <summary>The slice [start, end) of <paramref name="total"/> items that part <paramref name="part"/> of <paramref name="parts"/> owns.</summary>
    public static (int Start, int End) Slice(int total, int part, int parts) =>
        ((int)((long)total * part / parts), (int)((long)total * (part + 1) / parts));

    private void Work(int part)
    {
        var go = _go[part - 1];
        while (true)
        {
            go.Wait();
            go.Reset();
            if (_stopping) return;
            _job!(part, Count);
            Interlocked.Decrement(ref _pending);
        }
    }

    public void Dispose()
    {
        _stopping = true;
        foreach (var g in _go) g.Set();
    }
}
