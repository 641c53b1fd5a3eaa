using System.Diagnostics;
using System.Globalization;

namespace MicroLm.Cli;

/// <summary>A one-line progress bar on stderr for long work (convert, quantize, downloads):
/// "label [#######.....]  58%  12.3 / 21.0 MB". Drawn only when stderr is the console and a terminal (never
/// into a redirected stream or a test's writer), at most ten times a second, and cleared when done.</summary>
public sealed class ConsoleProgress : IDisposable
{
    private readonly string _label;
    private readonly long _total;
    private readonly bool _draw;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _lastDraw = -1000;

    public ConsoleProgress(string label, long total, TextWriter stderr)
    {
        _label = label;
        _total = System.Math.Max(1, total);
        _draw = ReferenceEquals(stderr, Console.Error) && !Console.IsErrorRedirected && !OperatingSystem.IsBrowser();
    }

    public void Report(long done)
    {
        if (!_draw) return;
        long now = _clock.ElapsedMilliseconds;
        if (now - _lastDraw < 100 && done < _total) return;
        _lastDraw = now;
        double f = System.Math.Clamp((double)done / _total, 0, 1);
        int filled = (int)(f * 30);
        Console.Error.Write(string.Create(CultureInfo.InvariantCulture,
            $"\r{_label} [{new string('#', filled)}{new string('.', 30 - filled)}] {f * 100,3:F0}%  {done / 1e6:F1} / {_total / 1e6:F1} MB"));
    }

    public void Dispose()
    {
        if (_draw && _lastDraw >= 0) Console.Error.Write("\r\u001b[2K");
    }
}
