using MicroLm.Cli;
using static MicroLm.Tests.Cli.CliRun;

namespace MicroLm.Tests.Cli;

/// <summary>The CLI contract: every declared flag of every command (read from <see cref="CliMain.All"/>, so a
/// command added later is covered without touching this file), given a missing, empty, negative, zero, huge,
/// NaN or garbage value after a valid command line, exits 0, 1 or 2 with at most one error line and never a
/// stack trace or an escaping exception; an unknown flag and a stray word are rejected. Commands that wait
/// for input or serve (no <see cref="CommandSpec.ContractExample"/>) have their parsing checked instead.</summary>
public class CliContractTests
{
    private const string Missing = "<missing>";
    private static readonly string[] Values = [Missing, "", "-1", "0", "2147483647", "99999999999999999999", "1e308", "NaN", "garbage\u001b[31m"];

    public static TheoryData<string, string> CommandFlags()
    {
        var d = new TheoryData<string, string>();
        foreach (var c in CliMain.All)
            foreach (var f in c.Flags) d.Add(c.Name, f.Name);
        return d;
    }

    public static TheoryData<string> Commands() => [.. CliMain.All.Select(c => c.Name)];

    private static string[] Example(CommandSpec spec, string dir) =>
        [.. (spec.ContractExample ?? []).Select(a => a switch
        {
            "$MODEL" => ModelPath,
            "$LLAMA2C" => Llama2c,
            "$TOKENIZER" => Tok512,
            "$OUT" => Path.Combine(dir, "out.gguf"),
            "$DIR" => dir,
            _ => a,
        })];

    [SharedTheory, MemberData(nameof(CommandFlags))]
    public void Every_value_of_every_flag_gives_an_exit_code_and_at_most_one_error_line(string command, string flagName)
    {
        var spec = CliMain.Find(command)!;
        var flag = spec.Find(flagName)!;
        string dir = TempDir();
        try
        {
            var baseArgs = Example(spec, dir);
            foreach (var v in flag.Kind == FlagKind.Switch ? [Missing, "stray"] : Values)
            {
                // Relative paths land in the test's own folder, not the working directory.
                string value = flag.Kind == FlagKind.Path && v.Length > 0 && v != Missing ? Path.Combine(dir, v) : v;
                string[] args = [command, .. baseArgs, flagName, .. v == Missing ? Array.Empty<string>() : [value]];
                string shown = string.Join(' ', args.Skip(1).Select(a => a.Length == 0 ? "''" : a));
                if (spec.ContractExample == null)
                {
                    try { Options.Parse(spec, args[1..]); }
                    catch (UsageException e) { Assert.DoesNotContain('\n', e.Message); }
                    continue;
                }
                (int Code, string Out, string Err) r;
                try { r = Run(args); }
                catch (Exception e) { throw new Xunit.Sdk.XunitException($"{shown}: {e.GetType().Name} escaped: {e.Message}"); }
                Assert.True(r.Code is 0 or 1 or 2, $"{shown}: exit {r.Code}\n{r.Err}");
                Assert.True(ErrorLines(r.Err).Length <= 1, $"{shown}: more than one error line\n{r.Err}");
                Assert.DoesNotContain("   at ", r.Err, StringComparison.Ordinal);
                Assert.DoesNotContain('\u001b', r.Err);
                if (r.Code != 0) Assert.Contains("microlm: error: ", r.Err, StringComparison.Ordinal);
                if (v == Missing && flag.Kind != FlagKind.Switch) Assert.Equal(1, r.Code);
                if (v == "stray") Assert.Equal(1, r.Code);
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    [SharedTheory, MemberData(nameof(Commands))]
    public void Unknown_flags_and_stray_words_are_rejected(string command)
    {
        var spec = CliMain.Find(command)!;
        string dir = TempDir();
        try
        {
            var baseArgs = Example(spec, dir);
            if (spec.ContractExample == null)
            {
                Assert.Throws<UsageException>(() => Options.Parse(spec, [.. baseArgs, "--no-such-flag"]));
                return;
            }
            AssertError(Run([command, .. baseArgs, "--no-such-flag", "1"]), "unknown option --no-such-flag");
            var stray = Run([command, .. baseArgs, "stray", "words", "here"]);
            Assert.Equal(1, stray.Code);
            Assert.Single(ErrorLines(stray.Err));
            // The example itself runs.
            var ok = Run([command, .. baseArgs]);
            Assert.True(ok.Code == 0, $"{command} example failed: {ok.Err}");
        }
        finally { Directory.Delete(dir, true); }
    }
}
