namespace MicroLm.Cli;

/// <summary>The browser app's stand-in for the CLI's downloader (src/MicroLm.Cli/ModelDownloader.cs, left out of
/// this project): <c>ModelSource</c> refuses -hf and --model-url in the browser before it would get here (the page
/// loads a model by URL with fetch), and leaving the real one out keeps System.Net.Http (~35 KB brotli) out of
/// the download.</summary>
internal sealed class ModelDownloader
{
    private ModelDownloader() { }

    public static ModelDownloader FromEnvironment(TextWriter progress) =>
        throw new PlatformNotSupportedException("downloads are the CLI's; in the browser load the file by URL");

    public string FromHuggingFace(string spec) => throw new PlatformNotSupportedException(spec);

    public string FromUrl(string url) => throw new PlatformNotSupportedException(url);
}
