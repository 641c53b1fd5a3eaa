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

    [JSImport("matmul", "microlm-kernels")]
    private static partial void Call(int function, int weights, int rowBytes, int rows, int n, int xs, int count, int output, int stride);
}
