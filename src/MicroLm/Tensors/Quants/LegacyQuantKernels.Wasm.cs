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

// Q4_1, Q5_0 and Q5_1 add one term per block in block order (see LegacyQuantKernels.cs): BlockSums.

internal sealed partial class Q4_1Kernel
{
    // Block: f16 d at 0, f16 m at 2, 16 bytes at 4: low nibbles are values 0..15, high nibbles 16..31.
    internal override WasmDot WasmDot => static (f, row, x, scales, n) =>
        BlockSums.EmitQ8_0Blocks(f, row, x, scales, n, TensorTypes.Get(GgmlType.Q4_1).BytesPerBlock, static (f, p, xp, dx) =>
        {
            Local lo = f.Local(WasmType.V128), hi = f.Local(WasmType.V128);
            f.Get(p).V128Load(4).Set(hi);
            f.Get(hi); BlockSums.EmitSplat(f, 0x0F); f.V128And().Set(lo);
            f.Get(hi).I32Const(4).I8x16ShrU().Set(hi);
            BlockSums.EmitQ8_0Term(f, p, xp, dx, lo, hi, minAt: 2);
        });
}

internal sealed partial class Q5_0Kernel
{
    // Block: f16 d at 0, u32 fifth bits at 2, 16 bytes at 6 (low nibbles values 0..15, high 16..31); value − 16.
    internal override WasmDot WasmDot => static (f, row, x, scales, n) =>
        BlockSums.EmitQ8_0Blocks(f, row, x, scales, n, TensorTypes.Get(GgmlType.Q5_0).BytesPerBlock, static (f, p, xp, dx) =>
        {
            Local lo = f.Local(WasmType.V128), hi = f.Local(WasmType.V128), bits = f.Local(WasmType.V128);
            UnpackFive(f, p, qhAt: 2, qsAt: 6, lo, hi, bits);
            f.Get(lo); BlockSums.EmitSplat(f, 16); f.I8x16Sub().Set(lo);
            f.Get(hi); BlockSums.EmitSplat(f, 16); f.I8x16Sub().Set(hi);
            BlockSums.EmitQ8_0Term(f, p, xp, dx, lo, hi, minAt: null);
        });

    /// <summary>The 32 five-bit values (0..31) of a Q5_0/Q5_1 block as bytes: nibbles from qs, bit 4 from qh.</summary>
    internal static void UnpackFive(WasmFunction f, Local p, uint qhAt, uint qsAt, Local lo, Local hi, Local scratch)
    {
        f.Get(p).V128Load(qsAt).Set(hi);
        f.Get(hi); BlockSums.EmitSplat(f, 0x0F); f.V128And().Set(lo);
        f.Get(hi).I32Const(4).I8x16ShrU().Set(hi);
        BlockSums.EmitFifthBits(f, p, qhAt, lo, hi, scratch);
    }
}

internal sealed partial class Q5_1Kernel
{
    // Block: f16 d at 0, f16 m at 2, u32 fifth bits at 4, 16 bytes at 8.
    internal override WasmDot WasmDot => static (f, row, x, scales, n) =>
        BlockSums.EmitQ8_0Blocks(f, row, x, scales, n, TensorTypes.Get(GgmlType.Q5_1).BytesPerBlock, static (f, p, xp, dx) =>
        {
            Local lo = f.Local(WasmType.V128), hi = f.Local(WasmType.V128), bits = f.Local(WasmType.V128);
            Q5_0Kernel.UnpackFive(f, p, qhAt: 4, qsAt: 8, lo, hi, bits);
            BlockSums.EmitQ8_0Term(f, p, xp, dx, lo, hi, minAt: 2);
        });
}
