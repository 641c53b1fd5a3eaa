using MicroLm.Cli;

return CliMain.Run(args, Console.Out, Console.Error);
