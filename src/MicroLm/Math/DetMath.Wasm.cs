using MicroLm.Tensors.Wasm;

namespace MicroLm.Math;

// DetMath's functions in WebAssembly (for the compiled kernels, Tensors.Wasm.CompiledKernels): the same
// IEEE binary64 operations in the same order as the C# scalar algorithms, so the same bits.
internal static partial class DetMath
{
    /// <summary><see cref="ExpCoreSmall"/> of the f64 in <paramref name="t"/> (clamped first, as
    /// <see cref="ClampSmall"/>); leaves the f64 on the stack.</summary>
    internal static void EmitExpCoreSmallClamped(WasmFunction f, Local t, Local kd, Local r, Local kbits)
    {
        // ClampSmall: comparisons are false for NaN, which passes through as in C#.
        f.F64Const(SmallExpLimit).Get(t).Get(t).F64Const(SmallExpLimit).F64Gt().Select().Set(t);
        f.F64Const(-SmallExpLimit).Get(t).Get(t).F64Const(-SmallExpLimit).F64Lt().Select().Set(t);
        f.Get(t).F64Const(InvLn2).F64Mul().F64Const(Shifter).F64Add().Set(kd);
        f.Get(kd).I64ReinterpretF64().Set(kbits);
        f.Get(kd).F64Const(Shifter).F64Sub().Set(kd);
        f.Get(t).Get(kd).F64Const(Ln2Hi).F64Mul().F64Sub().Get(kd).F64Const(Ln2Lo).F64Mul().F64Sub().Set(r);
        // p = 1 + r·Q(r), Q by Horner from E13 down to E1
        f.F64Const(1.0).Get(r);
        f.F64Const(E13);
        foreach (double c in new[] { E12, E11, E10, E9, E8, E7, E6, E5, E4, E3, E2, E1 })
            f.Get(r).F64Mul().F64Const(c).F64Add();
        f.F64Mul().F64Add();
        // × 2^k from bits
        f.Get(kbits).I64Const(ShifterBits).I64Sub().I64Const(1023).I64Add().I64Const(52).I64Shl().F64ReinterpretI64();
        f.F64Mul();
    }

    /// <summary><see cref="SoftmaxInPlace"/> of <paramref name="n"/> floats at address <paramref name="x"/> (n ≥ 1):
    /// the largest value (a NaN, or an infinite largest value, makes every output the canonical NaN), each
    /// e^(x − max) as <see cref="ExpShiftedScalar"/>, their sum in the 16 lanes of <see cref="Kernels"/>, then
    /// each value divided by the sum.</summary>
    internal static void EmitSoftmaxInPlace(WasmFunction f, Local x, Local n)
    {
        const WasmType I = WasmType.I32, F = WasmType.F32, D = WasmType.F64, V = WasmType.V128;
        Local p = f.Local(I), end = f.Local(I), nan = f.Local(I), m = f.Local(F), v = f.Local(F), sum = f.Local(F), rest = f.Local(I);
        Local t = f.Local(D), kd = f.Local(D), r = f.Local(D), kbits = f.Local(WasmType.I64);
        Local[] acc = [f.Local(V), f.Local(V), f.Local(V), f.Local(V)];
        f.Get(x).Get(n).I32Const(2).I32Shl().I32Add().Set(end);

        int done = f.Block();
        f.F32Const(float.NegativeInfinity).Set(m);
        f.I32Const(0).Set(nan);
        f.Get(x).Set(p);
        int scan = f.Loop();
        f.Get(p).F32Load().Set(v);
        f.Get(nan).Get(v).Get(v).F32Ne().I32Or().Set(nan);
        f.Get(v).Get(m).Get(v).Get(m).F32Gt().Select().Set(m);
        f.Get(p).I32Const(4).I32Add().Tee(p).Get(end).I32LtS().BrIf(scan);
        f.End();

        f.Get(nan).Get(m).F32Abs().F32Const(float.PositiveInfinity).F32Eq().I32Or().If();
        f.Get(x).Set(p);
        int fill = f.Loop();
        f.Get(p).I32Const(CanonicalNaNBits).I32Store();
        f.Get(p).I32Const(4).I32Add().Tee(p).Get(end).I32LtS().BrIf(fill);
        f.End();
        f.Br(done);
        f.End();

        // e^(x − max), rounded to float
        f.Get(x).Set(p);
        int exp = f.Loop();
        f.Get(p);
        f.Get(p).F32Load().F64PromoteF32().Get(m).F64PromoteF32().F64Sub().Set(t);
        EmitExpCoreSmallClamped(f, t, kd, r, kbits);
        f.F32DemoteF64().F32Store();
        f.Get(p).I32Const(4).I32Add().Tee(p).Get(end).I32LtS().BrIf(exp);
        f.End();

        // Σ in 16 lanes: whole chunks as four f32x4, then the last n % 16 values lane by lane.
        foreach (var a in acc) f.F32Const(0).F32x4Splat().Set(a);
        f.Get(x).Get(n).I32Const(-Kernels.Lanes).I32And().I32Const(2).I32Shl().I32Add().Set(rest); // end of whole chunks
        f.Get(x).Set(p);
        int chunksDone = f.Block();
        f.Get(p).Get(rest).I32GeS().BrIf(chunksDone);
        int chunk = f.Loop();
        for (int k = 0; k < 4; k++) f.Get(acc[k]).Get(p).V128Load((uint)(16 * k)).F32x4Add().Set(acc[k]);
        f.Get(p).I32Const(64).I32Add().Tee(p).Get(rest).I32LtS().BrIf(chunk);
        f.End();
        f.End();
        f.Get(n).I32Const(Kernels.Lanes - 1).I32And().Set(rest);
        int tailDone = f.Block();
        for (int k = 0; k < Kernels.Lanes - 1; k++)
        {
            f.I32Const(k).Get(rest).I32GeS().BrIf(tailDone);
            var a = acc[k >> 2];
            byte lane = (byte)(k & 3);
            f.Get(a).Get(a).F32x4ExtractLane(lane).Get(p).F32Load((uint)(4 * k)).F32Add().F32x4ReplaceLane(lane).Set(a);
        }
        f.End();
        Kernels.EmitReduceLanes(f, acc[0], acc[1], acc[2], acc[3]);
        f.Set(sum);

        f.Get(x).Set(p);
        int divide = f.Loop();
        f.Get(p).Get(p).F32Load().Get(sum).F32Div().F32Store();
        f.Get(p).I32Const(4).I32Add().Tee(p).Get(end).I32LtS().BrIf(divide);
        f.End();
        f.End();
    }

    /// <summary><see cref="SiluTimes"/> in WebAssembly, one value at a time as <see cref="Silu(float)"/>:
    /// −∞ gives −0, otherwise x / (1 + e^(−x)) in binary64 (exp clamped as <see cref="ClampSmall"/>) rounded
    /// to float; then times up[i]. (A NaN gives a NaN, as in C#; its payload is unspecified.)</summary>
    internal static void EmitSiluTimes(WasmFunction f, Local gate, Local up, Local output, Local n)
    {
        const WasmType I = WasmType.I32, F = WasmType.F32, D = WasmType.F64;
        Local i = f.Local(I), g = f.Local(F), x = f.Local(D), t = f.Local(D), kd = f.Local(D), r = f.Local(D), kbits = f.Local(WasmType.I64);
        int done = f.Block();
        f.Get(n).I32Eqz().BrIf(done);
        int each = f.Loop();
        f.Get(output).Get(i).I32Add();                                   // store address
        f.F32Const(-0f);
        f.Get(gate).Get(i).I32Add().F32Load().Tee(g).F64PromoteF32().Tee(x);
        f.F64Const(1.0);
        f.Get(x).F64Neg().Set(t);                                        // −x
        EmitExpCoreSmallClamped(f, t, kd, r, kbits);
        f.F64Add().F64Div().F32DemoteF64();
        f.Get(g).F32Const(float.NegativeInfinity).F32Eq().Select();
        f.Get(up).Get(i).I32Add().F32Load().F32Mul().F32Store();
        f.Get(i).I32Const(4).I32Add().Tee(i).Get(n).I32Const(2).I32Shl().I32LtS().BrIf(each);
        f.End();
        f.End();
    }
}
