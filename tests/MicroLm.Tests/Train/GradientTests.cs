using MicroLm.Train;

namespace MicroLm.Tests.Train;

/// <summary>The trainer's backward pass against central finite differences of its own forward pass.</summary>
public sealed class GradientTests
{
    [Fact]
    public void BackwardMatchesFiniteDifferences()
    {
        var c = new TrainConfig { Dim = 8, Hidden = 12, Layers = 2, Heads = 2, Vocab = 20, SeqLen = 5 };
        var net = new LlamaTrainer(c, batch: 2, threads: 1);
        var w = net.Initialize(7);
        // Larger weights than the initial 0.02 so every path carries a visible gradient.
        for (int i = 0; i < w.Length; i++) w[i] = w[i] * 20f;
        foreach (var e in net.Layout.Entries)
            if (!e.IsMatrix) for (int i = 0; i < e.Size; i++) w[e.Offset + i] = 1f + 0.1f * (i % 3);
        var wt = new float[w.Length];
        int[] inputs = [1, 5, 7, 3, 19, 2, 2, 11, 0, 4], targets = [5, 7, 3, 19, 6, 2, 11, 0, 4, 9];
        void Transpose() { foreach (var e in net.Layout.Entries) if (e.IsMatrix) TrainKernels.Transpose(w, e.Offset, e.Rows, e.Cols, wt, e.Offset); }
        Transpose();
        var grad = new float[w.Length];
        net.Step(w, wt, inputs, targets, grad);

        var rng = new SplitMix(3);
        int checkedCount = 0;
        var failures = new List<string>();
        foreach (var e in net.Layout.Entries)
        {
            for (int k = 0; k < 6; k++)
            {
                int i = e.Offset + rng.Below(e.Size);
                if (e.Name == "token_embd.weight") i = e.Offset + inputs[k % inputs.Length] * c.Dim + rng.Below(c.Dim);
                float saved = w[i];
                const float h = 1e-2f;
                w[i] = saved + h; Transpose(); double up = net.Step(w, wt, inputs, targets, null);
                w[i] = saved - h; Transpose(); double down = net.Step(w, wt, inputs, targets, null);
                w[i] = saved; Transpose();
                double numeric = (up - down) / (2 * h);
                // float forward: the difference quotient carries ~1e-5 absolute noise; 3% or 2e-4 covers it.
                double tol = System.Math.Max(2e-4, 0.03 * System.Math.Abs(numeric));
                if (System.Math.Abs(numeric - grad[i]) > tol) failures.Add($"{e.Name}[{i - e.Offset}]: analytic {grad[i]:G6}, numeric {numeric:G6}");
                checkedCount++;
            }
        }
        Assert.True(failures.Count == 0, string.Join('\n', failures));
        Assert.True(checkedCount > 50);
    }
}
