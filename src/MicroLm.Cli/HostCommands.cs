namespace MicroLm.Cli;

public static partial class Commands
{
    /// <summary>Commands only the native host has (chat, serve: console input, ASP.NET Core), registered
    /// by Program.cs, so that the browser build, which compiles this folder's files, needs neither.</summary>
    public static readonly Dictionary<string, Func<Options, TextWriter, TextWriter, int>> HostCommands = new(StringComparer.Ordinal);
}
