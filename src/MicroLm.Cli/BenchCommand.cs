namespace MicroLm.Cli;

public static class BenchCommand
{
    public static int Run(Options o, TextWriter stdout, TextWriter stderr) => throw new UsageException("bench: not built yet");
}
