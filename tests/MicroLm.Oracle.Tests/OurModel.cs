using MicroLm.Models;

namespace MicroLm.Oracle.Tests;

/// <summary>MicroLm's side: the same positions evaluated the same way (prompt as one batch, then one at a time).</summary>
internal static class OurModel
{
    /// <summary>Greedy continuation of the prompt by MicroLm, so both engines see a natural sequence.</summary>
    public static (int[] Tokens, float[][] Logits) GreedyRun(string path, int[] prompt, int generate)
    {
        using var model = Model.Load(path);
        using var session = model.CreateSession(contextLength: prompt.Length + generate, threads: 1, maxBatch: System.Math.Max(prompt.Length, 1));
        var logits = new List<float[]>();
        var tokens = new List<int>(prompt);
        session.Evaluate(prompt, onLogits: (_, _, l) => logits.Add(l.ToArray()));
        for (int i = 0; i < generate; i++)
        {
            int next = ArgMax(logits[^1]);
            tokens.Add(next);
            session.Evaluate([next], onLogits: (_, _, l) => logits.Add(l.ToArray()));
        }
        return (tokens.ToArray(), logits.ToArray());
    }

    public static int ArgMax(float[] x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }
}
