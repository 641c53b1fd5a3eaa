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

        // e^(x − max), rounded to float: four at a time (two f64x2 halves, each lane the scalar's operations),
        // then the last n % 4 one at a time
        Local m2 = f.Local(V), x4 = f.Local(V), t2 = f.Local(V), kd2 = f.Local(V), r2 = f.Local(V), lo = f.Local(V), quadEnd = f.Local(I);
        var c = EmitExpConstants(f);
        f.Get(m).F64PromoteF32().F64x2Splat().Set(m2);
        f.Get(x).Get(n).I32Const(-4).I32And().I32Const(2).I32Shl().I32Add().Set(quadEnd);
        f.Get(x).Set(p);
        int quadsDone = f.Block();
        f.Get(p).Get(quadEnd).I32GeS().BrIf(quadsDone);
        int quad = f.Loop();
        f.Get(p).V128Load().Set(x4);
        f.Get(p);
        for (int half = 0; half < 2; half++)
        {
            f.Get(x4);
            if (half == 1) f.Get(x4).I8x16Shuffle(8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15);
            f.F64x2PromoteLowF32x4().Get(m2).F64x2Sub().Set(t2);
            EmitExpCoreSmallClamped2(f, t2, kd2, r2, c);
            f.F32x4DemoteF64x2Zero();
            if (half == 0) f.Set(lo);
            else f.Get(lo).I8x16Shuffle(16, 17, 18, 19, 20, 21, 22, 23, 0, 1, 2, 3, 4, 5, 6, 7);
        }
        f.V128Store();
        f.Get(p).I32Const(16).I32Add().Tee(p).Get(quadEnd).I32LtS().BrIf(quad);
        f.End();
        f.End();
        int singlesDone = f.Block();
        f.Get(p).Get(end).I32GeS().BrIf(singlesDone);
        int exp = f.Loop();
        f.Get(p);
        f.Get(p).F32Load().F64PromoteF32().Get(m).F64PromoteF32().F64Sub().Set(t);
        EmitExpCoreSmallClamped(f, t, kd, r, kbits);
        f.F32DemoteF64().F32Store();
        f.Get(p).I32Const(4).I32Add().Tee(p).Get(end).I32LtS().BrIf(exp);
        f.End();
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

    /// <summary><see cref="EmitExpCoreSmallClamped"/> on both binary64 lanes of the f64x2 in <paramref name="t"/>:
    /// each lane gets exactly the scalar's operations (IEEE operations are the same per lane; a comparison with
    /// NaN is false in both, so NaN passes the clamp); leaves the f64x2 on the stack. <paramref name="c"/> holds
    /// the constants as splats (<see cref="EmitExpConstants"/>).</summary>
    internal static void EmitExpCoreSmallClamped2(WasmFunction f, Local t, Local kd, Local r, Local[] c)
    {
        // c: 0 limit, 1 −limit, 2 InvLn2, 3 Shifter, 4 Ln2Hi, 5 Ln2Lo, 6 one, 7 E13 … 19 E1, 20 bias (1023 − ShifterBits as i64)
        f.Get(c[0]).Get(t).Get(t).Get(c[0]).F64x2Gt().V128Bitselect().Set(t);
        f.Get(c[1]).Get(t).Get(t).Get(c[1]).F64x2Lt().V128Bitselect().Set(t);
        f.Get(t).Get(c[2]).F64x2Mul().Get(c[3]).F64x2Add().Set(kd);  // kd's bits: the k of 2^k, biased
        f.Get(t).Get(kd).Get(c[3]).F64x2Sub().Tee(r).Get(c[4]).F64x2Mul().F64x2Sub().Get(r).Get(c[5]).F64x2Mul().F64x2Sub().Set(r);
        f.Get(c[6]).Get(r);
        f.Get(c[7]);
        for (int k = 8; k <= 19; k++) f.Get(r).F64x2Mul().Get(c[k]).F64x2Add();
        f.F64x2Mul().F64x2Add();
        f.Get(kd).Get(c[20]).I64x2Add().I32Const(52).I64x2Shl();
        f.F64x2Mul();
    }

    /// <summary>Locals holding the splatted constants <see cref="EmitExpCoreSmallClamped2"/> reads, set once.</summary>
    internal static Local[] EmitExpConstants(WasmFunction f)
    {
        double[] d = [SmallExpLimit, -SmallExpLimit, InvLn2, Shifter, Ln2Hi, Ln2Lo, 1.0, E13, E12, E11, E10, E9, E8, E7, E6, E5, E4, E3, E2, E1];
        var c = new Local[d.Length + 1];
        for (int k = 0; k < d.Length; k++) { c[k] = f.Local(WasmType.V128); f.F64Const(d[k]).F64x2Splat().Set(c[k]); }
        c[^1] = f.Local(WasmType.V128);
        f.I64Const(1023 - ShifterBits).I64x2Splat().Set(c[^1]);
        return c;
    }

    /// <summary>Where <see cref="EmitSiluTimesRows"/> reads its i32 arguments (index into the argument block).</summary>
    internal enum SiluRowsArg { Gate, Up, Width, Outputs, Count, Size }

    /// <summary><see cref="EmitSiluTimes"/> for several rows in one call: row t of gate and up (width floats apart)
    /// into the output at the t-th address of a table (<see cref="SiluRowsArg"/>), each row exactly as one call.</summary>
    internal static void EmitSiluTimesRows(WasmFunction f, Local args)
    {
        const WasmType I = WasmType.I32;
        Local gate = f.Local(I), up = f.Local(I), width = f.Local(I), outputs = f.Local(I), count = f.Local(I), t = f.Local(I), output = f.Local(I);
        f.Get(args).I32Load(4 * (uint)SiluRowsArg.Gate).Set(gate);
        f.Get(args).I32Load(4 * (uint)SiluRowsArg.Up).Set(up);
        f.Get(args).I32Load(4 * (uint)SiluRowsArg.Width).Set(width);
        f.Get(args).I32Load(4 * (uint)SiluRowsArg.Outputs).Set(outputs);
        f.Get(args).I32Load(4 * (uint)SiluRowsArg.Count).Set(count);
        int none = f.Block();
        f.Get(count).I32Eqz().BrIf(none);
        int each = f.Loop();
        f.Get(outputs).Get(t).I32Const(2).I32Shl().I32Add().I32Load().Set(output);
        EmitSiluTimes(f, gate, up, output, width);
        f.Get(gate).Get(width).I32Const(2).I32Shl().I32Add().Set(gate);
        f.Get(up).Get(width).I32Const(2).I32Shl().I32Add().Set(up);
        f.Get(t).I32Const(1).I32Add().Tee(t).Get(count).I32LtU().BrIf(each);
        f.End();
        f.End();
    }

    /// <summary><see cref="SiluTimes"/> in WebAssembly, as <see cref="Silu(float)"/> for each value:
    /// −∞ gives −0, otherwise x / (1 + e^(−x)) in binary64 (exp clamped as <see cref="ClampSmall"/>) rounded
    /// to float; then times up[i]. Four values per step (two f64x2 halves, each lane the scalar's operations),
    /// the last n % 4 one at a time. (A NaN gives a NaN, as in C#; its payload is unspecified.)</summary>
    internal static void EmitSiluTimes(WasmFunction f, Local gate, Local up, Local output, Local n)
    {
        const WasmType I = WasmType.I32, F = WasmType.F32, D = WasmType.F64, V = WasmType.V128;
        Local i = f.Local(I), g = f.Local(F), x = f.Local(D), t = f.Local(D), kd = f.Local(D), r = f.Local(D), kbits = f.Local(WasmType.I64);
        Local g4 = f.Local(V), x2 = f.Local(V), t2 = f.Local(V), kd2 = f.Local(V), r2 = f.Local(V), lo = f.Local(V), four = f.Local(I);
        var c = EmitExpConstants(f);
        // Four at a time while four remain (i and four are byte offsets; i set here, as this may be emitted in a loop).
        f.I32Const(0).Set(i);
        f.Get(n).I32Const(-4).I32And().I32Const(2).I32Shl().Set(four);
        int quadsDone = f.Block();
        f.Get(four).I32Eqz().BrIf(quadsDone);
        int quad = f.Loop();
        f.Get(gate).Get(i).I32Add().V128Load().Set(g4);
        for (int half = 0; half < 2; half++)
        {
            f.Get(g4);
            if (half == 1) f.Get(g4).I8x16Shuffle(8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15);
            f.F64x2PromoteLowF32x4().Tee(x2).F64x2Neg().Set(t2);          // −x
            f.Get(x2).Get(c[6]);
            EmitExpCoreSmallClamped2(f, t2, kd2, r2, c);
            f.F64x2Add().F64x2Div().F32x4DemoteF64x2Zero();                // [silu0, silu1, 0, 0]
            if (half == 0) f.Set(lo);
            else f.Get(lo).I8x16Shuffle(16, 17, 18, 19, 20, 21, 22, 23, 0, 1, 2, 3, 4, 5, 6, 7); // lo's two, then these two
        }
        // −∞ gives −0
        f.Set(x2);
        f.F32Const(-0f).F32x4Splat().Get(x2).Get(g4).F32Const(float.NegativeInfinity).F32x4Splat().F32x4Eq().V128Bitselect();
        f.Get(up).Get(i).I32Add().V128Load().F32x4Mul().Set(x2);
        f.Get(output).Get(i).I32Add().Get(x2).V128Store();
        f.Get(i).I32Const(16).I32Add().Tee(i).Get(four).I32LtS().BrIf(quad);
        f.End();
        f.End();
        int done = f.Block();
        f.Get(i).Get(n).I32Const(2).I32Shl().I32GeS().BrIf(done);
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
