using MicroLm.Gguf;

namespace MicroLm.Models;

/// <summary>GPT-NeoX's tensors by llama.cpp's names (fused QKV, every norm and projection with its bias), each
/// checked against the shape the config gives, loaded as the caller's matrix and vector types: <see cref="GptNeoX"/>
/// reads them as floats, FixedPoint.FixedGptNeoX as Q16.16 integers, from this one list.</summary>
internal sealed class GptNeoXWeights<TMatrix, TVector>
{
    internal sealed class Layer
    {
        public required TVector AttnNorm, AttnNormBias, QkvBias, OutputBias, FfnNorm, FfnNormBias, UpBias, DownBias;
        public required TMatrix Qkv, Wo, Up, Down;
    }

    public TMatrix Embedding { get; }
    public TMatrix Output { get; }
    public TVector OutputNorm { get; }
    public TVector OutputNormBias { get; }
    public Layer[] Layers { get; }

    public GptNeoXWeights(GgufFile file, ModelConfig c, Func<GgufTensorInfo, TMatrix> matrix, Func<GgufTensorInfo, int, TVector> vector)
    {
        int qDim = c.Heads * c.HeadDim, qkv = qDim + 2 * c.KvDim;
        TMatrix Matrix(string name, int cols, int rows) => matrix(Architecture.Tensor(file, name, cols, rows));
        TVector Vec(string name, int n) => vector(Architecture.Tensor(file, name, n), n);
        Embedding = Matrix("token_embd.weight", c.Dim, c.VocabSize);
        Output = Matrix("output.weight", c.Dim, c.VocabSize);
        OutputNorm = Vec("output_norm.weight", c.Dim);
        OutputNormBias = Vec("output_norm.bias", c.Dim);
        Layers = new Layer[c.Layers];
        for (int i = 0; i < c.Layers; i++)
        {
            string p = $"blk.{i}.";
            Layers[i] = new Layer
            {
                AttnNorm = Vec(p + "attn_norm.weight", c.Dim),
                AttnNormBias = Vec(p + "attn_norm.bias", c.Dim),
                Qkv = Matrix(p + "attn_qkv.weight", c.Dim, qkv),
                QkvBias = Vec(p + "attn_qkv.bias", qkv),
                Wo = Matrix(p + "attn_output.weight", qDim, c.Dim),
                OutputBias = Vec(p + "attn_output.bias", c.Dim),
                FfnNorm = Vec(p + "ffn_norm.weight", c.Dim),
                FfnNormBias = Vec(p + "ffn_norm.bias", c.Dim),
                Up = Matrix(p + "ffn_up.weight", c.Dim, c.HiddenDim),
                UpBias = Vec(p + "ffn_up.bias", c.HiddenDim),
                Down = Matrix(p + "ffn_down.weight", c.HiddenDim, c.Dim),
                DownBias = Vec(p + "ffn_down.bias", c.Dim),
            };
        }
    }
}
