using MicroLm.Tensors.Wasm;

namespace MicroLm.Models;

// The rotary embedding in WebAssembly, for the compiled batch step of attention (CompiledKernels.EmitRopeStore):
// the same float operations as Apply, pair by pair.
internal sealed partial class Rope
{
    /// <summary><see cref="Apply"/> in WebAssembly: rotates each of <paramref name="heads"/> heads (headDim floats
    /// apart, from address <paramref name="x"/>) in place, pair k (k &lt; half) by the angle whose cos and sin are
    /// floats k at <paramref name="cos"/> and <paramref name="sin"/>: x0·cos − x1·sin and x0·sin + x1·cos, with pairs
    /// (2k, 2k+1), or (k, k + half) where <paramref name="neox"/> is non-zero.</summary>
    internal static void EmitApply(WasmFunction f, Local x, Local heads, Local headDim, Local half, Local neox, Local cos, Local sin)
    {
        const WasmType I = WasmType.I32, F = WasmType.F32;
        Local h = f.Local(I), head = f.Local(I), k = f.Local(I), a0 = f.Local(I), a1 = f.Local(I), x0 = f.Local(F), x1 = f.Local(F), c = f.Local(F), s = f.Local(F);
        int none = f.Block();
        f.Get(heads).I32Eqz().BrIf(none);
        f.Get(half).I32Eqz().BrIf(none);
        f.I32Const(0).Set(h);
        f.Get(x).Set(head);
        int eachHead = f.Loop();
        f.I32Const(0).Set(k);
        int eachPair = f.Loop();
        // addresses of the pair's two values
        f.Get(k).Get(k).I32Const(1).I32Shl().Get(neox).Select().I32Const(2).I32Shl().Get(head).I32Add().Set(a0);          // neox ? k : 2k
        f.Get(k).Get(half).I32Add().Get(k).I32Const(1).I32Shl().I32Const(1).I32Add().Get(neox).Select().I32Const(2).I32Shl().Get(head).I32Add().Set(a1); // neox ? k + half : 2k + 1
        f.Get(a0).F32Load().Set(x0);
        f.Get(a1).F32Load().Set(x1);
        f.Get(cos).Get(k).I32Const(2).I32Shl().I32Add().F32Load().Set(c);
        f.Get(sin).Get(k).I32Const(2).I32Shl().I32Add().F32Load().Set(s);
        f.Get(a0).Get(x0).Get(c).F32Mul().Get(x1).Get(s).F32Mul().F32Sub().F32Store();
        f.Get(a1).Get(x0).Get(s).F32Mul().Get(x1).Get(c).F32Mul().F32Add().F32Store();
        f.Get(k).I32Const(1).I32Add().Tee(k).Get(half).I32LtU().BrIf(eachPair);
        f.End();
        f.Get(head).Get(headDim).I32Const(2).I32Shl().I32Add().Set(head);
        f.Get(h).I32Const(1).I32Add().Tee(h).Get(heads).I32LtU().BrIf(eachHead);
        f.End();
        f.End();
    }
}
