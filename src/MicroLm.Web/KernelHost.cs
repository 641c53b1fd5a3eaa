using System.Runtime.InteropServices.JavaScript;
using MicroLm.Tensors.Wasm;

namespace MicroLm.Web;

/// <summary>Runs the runtime's compiled kernels (<see cref="CompiledKernels.Module"/>) in the WebAssembly
/// instance that kernels.js made against the .NET runtime's own memory: one JS call per matmul (or range of
/// rows), with addresses into that memory.</summary>
internal sealed partial class KernelHost : IKernelHost
{
    public void MatMul(int function, int weights, int rowBytes, int rows, int n, int xs, int count, int output, int stride) =>
        Call(function, weights, rowBytes, rows, n, xs, count, output, stride);

    public void Attention(int q, int keys, int values, int scores, int output, int count, int headDim, float scale) =>
        CallAttention(q, keys, values, scores, output, count, headDim, scale);

    public void AttentionBatch(int args, float scale) => CallAttentionBatch(args, scale);

    public int Call(int function, int a, int b, int c, int d) => CallUtility(function, a, b, c, d);

    [JSImport("attentionBatch", "microlm-kernels")]
    private static partial void CallAttentionBatch(int args, float scale);

    [JSImport("call", "microlm-kernels")]
    private static partial int CallUtility(int function, int a, int b, int c, int d);

    [JSImport("attention", "microlm-kernels")]
    private static partial void CallAttention(int q, int keys, int values, int scores, int output, int count, int headDim, float scale);

    [JSImport("matmul", "microlm-kernels")]
    private static partial void Call(int function, int weights, int rowBytes, int rows, int n, int xs, int count, int output, int stride);
}
