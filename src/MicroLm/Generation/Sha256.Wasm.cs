using MicroLm.Tensors.Wasm;

namespace MicroLm.Generation;

// SHA-256's compression function in WebAssembly (a utility of Tensors.Wasm.CompiledKernels): the trace
// hashes every position's logits (128 KB per token for a 32,000-entry vocabulary), which on the browser's
// interpreter cost more than the token itself. Same function as Compress below, so the same digest.
internal sealed partial class Sha256
{
    /// <summary>Compresses <paramref name="blocks"/> 64-byte blocks at <paramref name="data"/> into the eight
    /// state words at <paramref name="state"/> (FIPS 180-4 §6.2.2, as <see cref="Compress"/>), fully unrolled
    /// with the schedule and working variables in locals. Leaves 0 on the stack.</summary>
    internal static void EmitCompressBlocks(WasmFunction f, Local state, Local data, Local blocks)
    {
        const WasmType I = WasmType.I32, V = WasmType.V128;
        var w = new Local[64];
        for (int i = 0; i < 64; i++) w[i] = f.Local(I);
        var v = new Local[8];
        for (int i = 0; i < 8; i++) v[i] = f.Local(I);
        Local t1 = f.Local(I), t2 = f.Local(I), chunk = f.Local(V), left = f.Local(I);
        f.Get(blocks).Set(left);
        int done = f.Block();
        f.Get(left).I32Eqz().BrIf(done);
        int each = f.Loop();
        // w[0..15]: the block's big-endian words (each 32-bit lane's bytes reversed)
        for (int q = 0; q < 4; q++)
        {
            f.Get(data).V128Load((uint)(16 * q)).Set(chunk);
            f.Get(chunk).Get(chunk).I8x16Shuffle(3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12).Set(chunk);
            for (int k = 0; k < 4; k++) f.Get(chunk).I32x4ExtractLane((byte)k).Set(w[4 * q + k]);
        }
        for (int i = 16; i < 64; i++)
        {
            // s0 = rotr(w[i−15], 7) ^ rotr(w[i−15], 18) ^ (w[i−15] >> 3); s1 likewise with 17, 19, 10
            f.Get(w[i - 16]);
            f.Get(w[i - 15]).I32Const(7).I32Rotr().Get(w[i - 15]).I32Const(18).I32Rotr().I32Xor().Get(w[i - 15]).I32Const(3).I32ShrU().I32Xor();
            f.I32Add().Get(w[i - 7]).I32Add();
            f.Get(w[i - 2]).I32Const(17).I32Rotr().Get(w[i - 2]).I32Const(19).I32Rotr().I32Xor().Get(w[i - 2]).I32Const(10).I32ShrU().I32Xor();
            f.I32Add().Set(w[i]);
        }
        for (int k = 0; k < 8; k++) f.Get(state).I32Load((uint)(4 * k)).Set(v[k]);
        // Rounds with the variables renamed instead of moved: round i's a..h are v[(8 − i + j) % 8].
        for (int i = 0; i < 64; i++)
        {
            Local a = v[(8 - i % 8) % 8], b = v[(9 - i % 8) % 8], c = v[(10 - i % 8) % 8], d = v[(11 - i % 8) % 8];
            Local e = v[(12 - i % 8) % 8], g6 = v[(13 - i % 8) % 8], g = v[(14 - i % 8) % 8], h = v[(15 - i % 8) % 8];
            Local ff = g6;
            // t1 = h + S1(e) + ch(e, f, g) + K[i] + w[i]
            f.Get(h);
            f.Get(e).I32Const(6).I32Rotr().Get(e).I32Const(11).I32Rotr().I32Xor().Get(e).I32Const(25).I32Rotr().I32Xor();
            f.I32Add();
            f.Get(e).Get(ff).I32And().Get(e).I32Const(-1).I32Xor().Get(g).I32And().I32Xor();
            f.I32Add().I32Const(unchecked((int)K[i])).I32Add().Get(w[i]).I32Add().Set(t1);
            // t2 = S0(a) + maj(a, b, c)
            f.Get(a).I32Const(2).I32Rotr().Get(a).I32Const(13).I32Rotr().I32Xor().Get(a).I32Const(22).I32Rotr().I32Xor();
            f.Get(a).Get(b).I32And().Get(a).Get(c).I32And().I32Xor().Get(b).Get(c).I32And().I32Xor();
            f.I32Add().Set(t2);
            // e' = d + t1 (into d's slot, which becomes e), a' = t1 + t2 (into h's slot, which becomes a)
            f.Get(d).Get(t1).I32Add().Set(d);
            f.Get(t1).Get(t2).I32Add().Set(h);
        }
        // after 64 rounds (a multiple of 8) the names are back in place
        for (int k = 0; k < 8; k++) f.Get(state).Get(state).I32Load((uint)(4 * k)).Get(v[k]).I32Add().I32Store((uint)(4 * k));
        f.Get(data).I32Const(64).I32Add().Set(data);
        f.Get(left).I32Const(1).I32Sub().Tee(left).BrIf(each);
        f.End();
        f.End();
        f.I32Const(0);
    }
}
