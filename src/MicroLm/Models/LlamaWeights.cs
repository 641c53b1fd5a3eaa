using MicroLm.Gguf;

namespace MicroLm.Models;

/// <summary>LLaMA's tensors by llama.cpp's names, each checked against the shape the config gives, loaded as the
/// caller's matrix and vector types: <see cref="Llama"/> reads them as floats, FixedPoint.FixedLlama as Q16.16
/// integers, from this one list. Without output.weight the classifier is the embedding (tied).</summary>
internal sealed class LlamaWeights<TMatrix, TVector>
{
    internal sealed class Layer
    {
        public required TVector AttnNorm, FfnNorm;
        public required TMatrix Wq, Wk, Wv, Wo, Gate, Up, Down;
    }

    public TMatrix Embedding { get; }
    public TMatrix Output { get; }
    public TVector OutputNorm { get; }
    public Layer[] Layers { get; }

    public LlamaWeights(GgufFile file, ModelConfig c, Func<GgufTensorInfo, TMatrix> matrix, Func<GgufTensorInfo, int, TVector> vector)
    {
        int qDim = c.Heads * c.HeadDim;
        TMatrix Matrix(string name, int cols, int rows) => matrix(Architecture.Tensor(file, name, cols, rows));
        TVector Vec(string name) => vector(Architecture.Tensor(file, name, c.Dim), c.Dim);
        Embedding = Matrix("token_embd.weight", c.Dim, c.VocabSize);
        Output = file.FindTensor("output.weight") is not null ? Matrix("output.weight", c.Dim, c.VocabSize) : Embedding;
        OutputNorm = Vec("output_norm.weight");
        Layers = new Layer[c.Layers];
        for (int i = 0; i < c.Layers; i++)
        {
            string p = $"blk.{i}.";
            Layers[i] = new Layer
            {
                AttnNorm = Vec(p + "attn_norm.weight"),
                FfnNorm = Vec(p + "ffn_norm.weight"),
                Wq = Matrix(p + "attn_q.weight", c.Dim, qDim),
                Wk = Matrix(p + "attn_k.weight", c.Dim, c.KvDim),
                Wv = Matrix(p + "attn_v.weight", c.Dim, c.KvDim),
                Wo = Matrix(p + "attn_output.weight", qDim, c.Dim),
                Gate = Matrix(p + "ffn_gate.weight", c.Dim, c.HiddenDim),
                Up = Matrix(p + "ffn_up.weight", c.Dim, c.HiddenDim),
                Down = Matrix(p + "ffn_down.weight", c.HiddenDim, c.Dim),
            };
        }
    }
}
