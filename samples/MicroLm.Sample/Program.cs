using MicroLm;

// Streams a story from a GGUF model: dotnet run -- MODEL.gguf "Once upon a time"
using var model = Model.Load(args[0]);
using var session = model.CreateSession();
var options = new GenerationOptions
{
    MaxTokens = 64,
    Sampling = new SamplingOptions { Temperature = 0.8f, Seed = 7 },
};
await foreach (var token in session.GenerateAsync(args.Length > 1 ? args[1] : "Once upon a time", options))
    Console.Write(token.Text);
Console.WriteLine();
