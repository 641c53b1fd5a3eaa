using MicroLm.Math;
using MicroLm.Tensors.Wasm;

namespace MicroLm.Tensors.Quants;

// The float types' WebAssembly kernels (see Wasm.CompiledKernels): the 16-lane dot of Kernels.EmitDot
// with each type's way of loading weights as floats.

internal sealed partial class F32Kernel
{
    internal override WasmDot WasmDot => static (f, row, x, scales, n) =>
        Kernels.EmitDot(f, row, x, n, TensorTypes.Get(GgmlType.F32).BytesPerBlock, LoadFour, LoadOne);

    internal override WasmDotTokens WasmDotTokens => static (f, row, xs, n, results) =>
        Kernels.EmitDotTokens(f, row, xs, n, TensorTypes.Get(GgmlType.F32).BytesPerBlock, LoadFour, LoadOne, results);

    private static void LoadFour(WasmFunction f, Local p, uint offset) => f.Get(p).V128Load(offset);
    private static void LoadOne(WasmFunction f, Local p, uint offset) => f.Get(p).F32Load(offset);
}

internal sealed partial class F16Kernel
{
    private const int FiniteMask = unchecked((int)0x8FFFFFFF);

    /// <summary>Exactly the C# conversion for finite halves (see <see cref="ToSingle(System.Runtime.Intrinsics.Vector128{uint})"/>;
    /// <see cref="Validate"/> refuses others): sign-extended, shifted left 13, copies of the sign masked off, times 2^112.</summary>
    internal override WasmDot WasmDot => static (f, row, x, scales, n) =>
        Kernels.EmitDot(f, row, x, n, TensorTypes.Get(GgmlType.F16).BytesPerBlock, LoadFour, LoadOne);

    internal override WasmDotTokens WasmDotTokens => static (f, row, xs, n, results) =>
        Kernels.EmitDotTokens(f, row, xs, n, TensorTypes.Get(GgmlType.F16).BytesPerBlock, LoadFour, LoadOne, results);

    private static void LoadFour(WasmFunction f, Local p, uint offset) =>
        f.Get(p).V128Load64Zero(offset).I32x4ExtendLowI16x8S().I32Const(13).I32x4Shl()
            .I32Const(FiniteMask).I32x4Splat().V128And().F32Const(TwoPow112).F32x4Splat().F32x4Mul();

    private static void LoadOne(WasmFunction f, Local p, uint offset) =>
        f.Get(p).I32Load16S(offset).I32Const(13).I32Shl().I32Const(FiniteMask).I32And().F32ReinterpretI32().F32Const(TwoPow112).F32Mul();

    /// <summary>Pushes the f32 of the half in the low 16 bits of <paramref name="h"/>, for every half
    /// (infinities and NaNs too: block scales are not validated), equal to <see cref="HalfToFloat"/>.</summary>
    internal static void EmitHalfToSingle(WasmFunction f, Local h)
    {
        // finite: as above
        f.Get(h).I32Const(16).I32Shl().I32Const(3).I32ShrS().I32Const(FiniteMask).I32And().F32ReinterpretI32().F32Const(TwoPow112).F32Mul();
        // infinity or NaN: sign, all-ones exponent, the mantissa widened
        f.Get(h).I32Const(0x8000).I32And().I32Const(16).I32Shl()
            .Get(h).I32Const(0x3FF).I32And().I32Const(13).I32Shl().I32Or().I32Const(0x7F800000).I32Or().F32ReinterpretI32();
        f.Get(h).I32Const(0x7C00).I32And().I32Const(0x7C00).I32Ne().Select();
    }
}

internal sealed partial class BF16Kernel
{
    /// <summary>The C# dot is <see cref="RowKernel.DotByDequantizing"/>, i.e. the 16-lane dot of the decoded row;
    /// a bfloat16 is the top half of its float, so decoding is a 16-bit shift (exact for every value, NaN and ∞ too).</summary>
    internal override WasmDot WasmDot => static (f, row, x, scales, n) =>
        Kernels.EmitDot(f, row, x, n, TensorTypes.Get(GgmlType.BF16).BytesPerBlock,
            static (f, p, offset) => f.Get(p).V128Load64Zero(offset).I32x4ExtendLowI16x8S().I32Const(16).I32x4Shl(),
            static (f, p, offset) => f.Get(p).I32Load16U(offset).I32Const(16).I32Shl().F32ReinterpretI32());
}
