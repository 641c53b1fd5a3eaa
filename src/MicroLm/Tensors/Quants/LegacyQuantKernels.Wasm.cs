using MicroLm.Tensors.Wasm;

namespace MicroLm.Tensors.Quants;

// WebAssembly kernels of the 32-value block formats (see Wasm.CompiledKernels): the 8-lane contract of
// IntegerDot (IntegerDot.EmitBlockDot) with each format's way of unpacking a block to 32 signed bytes.

internal sealed partial class Q8_0Kernel
{
    // Block: f16 d at 0, 32 signed quants at 2.
    private static void Unpack(WasmFunction f, Local p, Local lo, Local hi)
    {
        f.Get(p).V128Load(2).Set(lo);
        f.Get(p).V128Load(18).Set(hi);
    }

    internal override WasmDot WasmDot => static (f, row, x, scales, n) =>
        IntegerDot.EmitBlockDot(f, row, x, scales, n, TensorTypes.Get(GgmlType.Q8_0).BytesPerBlock, Unpack);

    internal override WasmDotRows WasmDotRows => static (f, rows, x, scales, n, results) =>
        IntegerDot.EmitBlockDotRows(f, rows, x, scales, n, TensorTypes.Get(GgmlType.Q8_0).BytesPerBlock, Unpack, results);
}

internal sealed partial class Q4_0Kernel
{
    // Block: f16 d at 0, 16 bytes at 2: low nibbles are values 0..15, high nibbles 16..31, each minus 8.
    private static void Unpack(WasmFunction f, Local p, Local lo, Local hi)
    {
        f.Get(p).V128Load(2).Set(hi);
        f.Get(hi).I32Const(0x0F).I8x16Splat().V128And().I32Const(8).I8x16Splat().I8x16Sub().Set(lo);
        f.Get(hi).I32Const(4).I8x16ShrU().I32Const(8).I8x16Splat().I8x16Sub().Set(hi);
    }

    internal override WasmDot WasmDot => static (f, row, x, scales, n) =>
        IntegerDot.EmitBlockDot(f, row, x, scales, n, TensorTypes.Get(GgmlType.Q4_0).BytesPerBlock, Unpack);

    internal override WasmDotRows WasmDotRows => static (f, rows, x, scales, n, results) =>
        IntegerDot.EmitBlockDotRows(f, rows, x, scales, n, TensorTypes.Get(GgmlType.Q4_0).BytesPerBlock, Unpack, results);
}
