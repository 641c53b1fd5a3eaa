namespace MicroLm.Train;

/// <summary>The shape of the LLaMA being trained (multi-head attention, tied classifier).</summary>
internal sealed record TrainConfig
{
    public int Dim { get; init; } = 128;
    public int Hidden { get; init; } = 384;
    public int Layers { get; init; } = 4;
    public int Heads { get; init; } = 4;
    public int Vocab { get; init; } = 1024;
    public int SeqLen { get; init; } = 128;
    public float RopeBase { get; init; } = 10000f;
    public float Eps { get; init; } = 1e-5f;
    public int HeadDim => Dim / Heads;

    public void Validate()
    {
        if (Dim <= 0 || Hidden <= 0 || Layers <= 0 || Heads <= 0 || Vocab <= 0 || SeqLen <= 1)
            throw new MicroLmException("model sizes must be positive (and the sequence at least 2 tokens)");
        if (Dim % Heads != 0 || HeadDim % 2 != 0)
            throw new MicroLmException($"--dim {Dim} must be a multiple of --heads {Heads} with an even head size");
    }
}

/// <summary>Where each tensor lives in the one flat parameter array (and its gradient, moments and
/// transposed copy, which share the layout). Matrices are [rows = outputs][columns = inputs], GGUF's order.</summary>
internal sealed class ParamLayout
{
    public sealed record Entry(string Name, int Offset, int Rows, int Cols, bool IsMatrix)
    {
        public int Size => Rows * Cols;
    }

    public sealed class LayerOffsets
    {
        public int AttnNorm, Wq, Wk, Wv, Wo, FfnNorm, Gate, Up, Down;
    }

    public List<Entry> Entries { get; } = [];
    public int Embedding { get; }
    public int OutputNorm { get; }
    public LayerOffsets[] Layers { get; }
    public int Count { get; private set; }

    public ParamLayout(TrainConfig c)
    {
        Embedding = Add("token_embd.weight", c.Vocab, c.Dim, true);
        Layers = new LayerOffsets[c.Layers];
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"blk.{l}.";
            Layers[l] = new LayerOffsets
            {
                AttnNorm = Add(p + "attn_norm.weight", 1, c.Dim, false),
                Wq = Add(p + "attn_q.weight", c.Dim, c.Dim, true),
                Wk = Add(p + "attn_k.weight", c.Dim, c.Dim, true),
                Wv = Add(p + "attn_v.weight", c.Dim, c.Dim, true),
                Wo = Add(p + "attn_output.weight", c.Dim, c.Dim, true),
                FfnNorm = Add(p + "ffn_norm.weight", 1, c.Dim, false),
                Gate = Add(p + "ffn_gate.weight", c.Hidden, c.Dim, true),
                Up = Add(p + "ffn_up.weight", c.Hidden, c.Dim, true),
                Down = Add(p + "ffn_down.weight", c.Dim, c.Hidden, true),
            };
        }
        OutputNorm = Add("output_norm.weight", 1, c.Dim, false);
    }

    private int Add(string name, int rows, int cols, bool matrix)
    {
        int offset = Count;
        Entries.Add(new Entry(name, offset, rows, cols, matrix));
        Count = checked(Count + rows * cols);
        return offset;
    }
}
