using MicroLm.Tensors.Wasm;

namespace MicroLm.Tensors.Quants;

// The activation's Q8_0 form in WebAssembly (a utility of Wasm.CompiledKernels): every quantized matmul
// quantizes its input first, which on the browser's interpreter cost 4–18 % of a token. Same steps as
// Activation.EnsureQ8, so the same quants, scales and sums.
internal sealed partial class Activation
{
    /// <summary>Quantizes <paramref name="blocks"/> 32-value blocks of floats at <paramref name="values"/> as
    /// <see cref="EnsureQ8"/>: per block the largest magnitude compared as integer bits, d = amax/127, id = 1/d
    /// (0 if d is 0), each value times id rounded half to even and converted to an integer; quants to
    /// <c>out[0]</c>, d rounded to f16 and back to <c>out[1]</c>, d·Σq to <c>out[2]</c>, 8·(group sum) to
    /// <c>out[3]</c> (<paramref name="outputs"/> holds those four addresses). Finite values only (the forward
    /// pass stops at a non-finite hidden state before it gets here). Leaves 0 on the stack.</summary>
    internal static void EmitQuantize(WasmFunction f, Local values, Local blocks, Local outputs)
    {
        const WasmType I = WasmType.I32, F = WasmType.F32, V = WasmType.V128;
        Local quants = f.Local(I), scales = f.Local(I), scaledSums = f.Local(I), groupSums = f.Local(I), left = f.Local(I);
        Local largest = f.Local(V), magnitude = f.Local(V), id = f.Local(V), sum = f.Local(I), gs = f.Local(I);
        Local d = f.Local(F), dh = f.Local(F), bits = f.Local(I);
        var q = new Local[8];
        for (int g = 0; g < 8; g++) q[g] = f.Local(V);
        f.Get(outputs).I32Load(0).Set(quants);
        f.Get(outputs).I32Load(4).Set(scales);
        f.Get(outputs).I32Load(8).Set(scaledSums);
        f.Get(outputs).I32Load(12).Set(groupSums);
        f.I32Const(0x7FFFFFFF).I32x4Splat().Set(magnitude);
        f.Get(blocks).Set(left);
        int done = f.Block();
        f.Get(left).I32Eqz().BrIf(done);
        int each = f.Loop();
        f.I32Const(0).I32x4Splat().Set(largest);
        for (int g = 0; g < 8; g++)
            f.Get(largest).Get(values).V128Load((uint)(16 * g)).Get(magnitude).V128And().I32x4MaxS().Set(largest);
        // max of the four lanes, as Math.Max(Math.Max(l0, l1), Math.Max(l2, l3))
        f.Get(largest).I32x4ExtractLane(0).Set(bits).Get(largest).I32x4ExtractLane(1).Set(gs);
        f.Get(bits).Get(gs).Get(bits).Get(gs).I32GtS().Select().Set(sum);               // max(l0, l1)
        f.Get(largest).I32x4ExtractLane(2).Set(bits).Get(largest).I32x4ExtractLane(3).Set(gs);
        f.Get(bits).Get(gs).Get(bits).Get(gs).I32GtS().Select().Set(bits);              // max(l2, l3)
        f.Get(sum).Get(bits).Get(sum).Get(bits).I32GtS().Select();                      // the largest magnitude
        f.F32ReinterpretI32().F32Const(127f).F32Div().Set(d);
        f.F32Const(1f).Get(d).F32Div().F32Const(0f).Get(d).F32Const(0f).F32Ne().Select().F32x4Splat().Set(id);
        f.I32Const(0).Set(sum);
        for (int g = 0; g < 8; g++)
        {
            f.Get(values).V128Load((uint)(16 * g)).Get(id).F32x4Mul().F32x4Nearest().I32x4TruncSatF32x4S().Set(q[g]);
            // the group's sum (exact): lanes 0 + 1 + 2 + 3 as Vector128.Sum
            f.Get(q[g]).I32x4ExtractLane(0).Get(q[g]).I32x4ExtractLane(1).I32Add()
                .Get(q[g]).I32x4ExtractLane(2).I32Add().Get(q[g]).I32x4ExtractLane(3).I32Add().Set(gs);
            f.Get(groupSums).Get(gs).I32Const(3).I32Shl().I32Store((uint)(4 * g));
            f.Get(sum).Get(gs).I32Add().Set(sum);
        }
        f.Get(quants);
        f.Get(q[0]).Get(q[1]).I16x8NarrowI32x4S().Get(q[2]).Get(q[3]).I16x8NarrowI32x4S().I8x16NarrowI16x8S();
        f.V128Store();
        f.Get(quants);
        f.Get(q[4]).Get(q[5]).I16x8NarrowI32x4S().Get(q[6]).Get(q[7]).I16x8NarrowI32x4S().I8x16NarrowI16x8S();
        f.V128Store(16);
        EmitRoundToHalf(f, d, bits);
        f.Set(dh);
        f.Get(scales).Get(dh).F32Store();
        f.Get(scaledSums).Get(dh).Get(sum).F32ConvertI32S().F32Mul().F32Store();
        f.Get(values).I32Const(128).I32Add().Set(values);
        f.Get(quants).I32Const(32).I32Add().Set(quants);
        f.Get(scales).I32Const(4).I32Add().Set(scales);
        f.Get(scaledSums).I32Const(4).I32Add().Set(scaledSums);
        f.Get(groupSums).I32Const(32).I32Add().Set(groupSums);
        f.Get(left).I32Const(1).I32Sub().Tee(left).BrIf(each);
        f.End();
        f.End();
        f.I32Const(0);
    }

    /// <summary>Pushes (float)(Half)d for a non-negative finite d: rounded to the nearest f16, ties to even,
    /// as IEEE conversion does — half subnormals (below 2^−14) in steps of 2^−24, normal halves to 11
    /// significant bits (carry into the exponent included), and infinity from 65520 up.</summary>
    internal static void EmitRoundToHalf(WasmFunction f, Local d, Local bits)
    {
        // subnormal: nearest(d·2^24)·2^−24 (both scalings exact)
        f.Get(d).F32Const(16777216f).F32Mul().F32Nearest().F32Const(1f / 16777216f).F32Mul();
        // normal: round the 23-bit mantissa to 10 bits, ties to even, on the bits
        f.Get(d).I32ReinterpretF32().Tee(bits).I32Const(0x0FFF).I32Add().Get(bits).I32Const(13).I32ShrU().I32Const(1).I32And().I32Add()
            .I32Const(unchecked((int)0xFFFFE000)).I32And().F32ReinterpretI32();
        f.Get(d).F32Const(1f / 16384f).F32Lt().Select();
        // overflow: 65520 and up round to infinity
        f.F32Const(float.PositiveInfinity).Get(d).F32Const(65520f).F32Lt().Select();
    }
}
