namespace MicroLm.Tensors.Wasm;

/// <summary>Value types of WebAssembly (binary encodings).</summary>
internal enum WasmType : byte { I32 = 0x7F, I64 = 0x7E, F32 = 0x7D, F64 = 0x7C, V128 = 0x7B }

/// <summary>A WebAssembly module with one imported memory (<c>env.memory</c>, the host's) and exported
/// functions: just enough of the binary format (core spec §5) for the runtime's kernels. The bytes are a
/// pure function of the calls made, so the module is the same on every machine and run.</summary>
internal sealed class WasmModule
{
    private readonly List<(WasmType[] Params, WasmType[] Results)> _types = [];
    private readonly List<(int Type, string Name, byte[] Body)> _functions = [];

    /// <summary>Adds an exported function whose body <paramref name="emit"/> writes; returns its index.</summary>
    public int AddFunction(string name, WasmType[] parameters, WasmType[] results, Action<WasmFunction> emit)
    {
        int type = _types.FindIndex(t => t.Params.AsSpan().SequenceEqual(parameters) && t.Results.AsSpan().SequenceEqual(results));
        if (type < 0) { type = _types.Count; _types.Add((parameters, results)); }
        var f = new WasmFunction(parameters);
        emit(f);
        _functions.Add((type, name, f.Finish()));
        return _functions.Count - 1;
    }

    public IReadOnlyList<string> FunctionNames => _functions.ConvertAll(f => f.Name);

    public byte[] ToBytes()
    {
        var m = new ByteWriter();
        m.Bytes(0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00); // \0asm, version 1

        Section(m, 1, s =>
        {
            s.U32((uint)_types.Count);
            foreach (var (p, r) in _types)
            {
                s.Byte(0x60);
                s.U32((uint)p.Length); foreach (var t in p) s.Byte((byte)t);
                s.U32((uint)r.Length); foreach (var t in r) s.Byte((byte)t);
            }
        });
        Section(m, 2, s =>
        {
            // import "env" "memory" (memory 0): no maximum, so any host memory matches.
            s.U32(1); s.Name("env"); s.Name("memory"); s.Byte(0x02); s.Byte(0x00); s.U32(0);
        });
        Section(m, 3, s => { s.U32((uint)_functions.Count); foreach (var f in _functions) s.U32((uint)f.Type); });
        Section(m, 7, s =>
        {
            s.U32((uint)_functions.Count);
            for (int i = 0; i < _functions.Count; i++) { s.Name(_functions[i].Name); s.Byte(0x00); s.U32((uint)i); }
        });
        Section(m, 10, s =>
        {
            s.U32((uint)_functions.Count);
            foreach (var f in _functions) { s.U32((uint)f.Body.Length); s.Bytes(f.Body); }
        });
        return m.ToArray();
    }

    private static void Section(ByteWriter m, byte id, Action<ByteWriter> content)
    {
        var s = new ByteWriter();
        content(s);
        m.Byte(id);
        m.U32((uint)s.Length);
        m.Bytes(s.ToArray());
    }
}

/// <summary>A growable byte buffer with LEB128 encodings.</summary>
internal sealed class ByteWriter
{
    private byte[] _buffer = new byte[256];
    public int Length { get; private set; }

    public void Byte(byte b)
    {
        if (Length == _buffer.Length) Array.Resize(ref _buffer, _buffer.Length * 2);
        _buffer[Length++] = b;
    }

    public void Bytes(params ReadOnlySpan<byte> bytes) { foreach (var b in bytes) Byte(b); }

    public void U32(uint v)
    {
        do { byte b = (byte)(v & 0x7F); v >>= 7; Byte(v != 0 ? (byte)(b | 0x80) : b); } while (v != 0);
    }

    public void S32(int v)
    {
        while (true)
        {
            byte b = (byte)(v & 0x7F);
            v >>= 7;
            bool done = (v == 0 && (b & 0x40) == 0) || (v == -1 && (b & 0x40) != 0);
            Byte(done ? b : (byte)(b | 0x80));
            if (done) return;
        }
    }

    public void Name(string s)
    {
        var utf8 = System.Text.Encoding.UTF8.GetBytes(s);
        U32((uint)utf8.Length);
        Bytes(utf8);
    }

    public byte[] ToArray() => _buffer.AsSpan(0, Length).ToArray();
}

/// <summary>A local variable of a function being written.</summary>
internal readonly record struct Local(int Index, WasmType Type);

/// <summary>One function body: locals and a structured instruction stream. Methods are named after the
/// instructions they write (the text format's names), so a kernel reads like its WebAssembly.</summary>
internal sealed class WasmFunction
{
    private readonly ByteWriter _code = new();
    private readonly List<WasmType> _locals = [];
    private readonly int _parameters;
    private int _depth;

    public WasmFunction(WasmType[] parameters) { _parameters = parameters.Length; Params = [.. parameters.Select((t, i) => new Local(i, t))]; }

    public Local[] Params { get; }

    public Local Local(WasmType type) { _locals.Add(type); return new Local(_parameters + _locals.Count - 1, type); }

    public byte[] Finish()
    {
        if (_depth != 0) throw new InvalidOperationException("unbalanced blocks in a WebAssembly function");
        var body = new ByteWriter();
        body.U32((uint)_locals.Count); // one entry per local: simple, and small enough for kernels
        foreach (var t in _locals) { body.U32(1); body.Byte((byte)t); }
        body.Bytes(_code.ToArray());
        body.Byte(0x0B);
        return body.ToArray();
    }

    private WasmFunction Op(byte op) { _code.Byte(op); return this; }
    private WasmFunction Simd(uint op) { _code.Byte(0xFD); _code.U32(op); return this; }
    private WasmFunction Mem(byte op, uint offset) { _code.Byte(op); _code.U32(0); _code.U32(offset); return this; }
    private WasmFunction SimdMem(uint op, uint offset) { Simd(op); _code.U32(0); _code.U32(offset); return this; }

    // Control. Blocks and loops take no values; `Block`/`Loop` return the depth to branch to.
    public int Block() { _code.Byte(0x02); _code.Byte(0x40); return ++_depth; }
    public int Loop() { _code.Byte(0x03); _code.Byte(0x40); return ++_depth; }
    public WasmFunction If() { _code.Byte(0x04); _code.Byte(0x40); _depth++; return this; }
    public WasmFunction End() { _depth--; return Op(0x0B); }
    /// <summary>Branch to the block or loop opened when <see cref="Block"/>/<see cref="Loop"/> returned <paramref name="target"/>.</summary>
    public WasmFunction Br(int target) { Op(0x0C); _code.U32((uint)(_depth - target)); return this; }
    public WasmFunction BrIf(int target) { Op(0x0D); _code.U32((uint)(_depth - target)); return this; }

    public WasmFunction Get(Local l) { Op(0x20); _code.U32((uint)l.Index); return this; }
    public WasmFunction Set(Local l) { Op(0x21); _code.U32((uint)l.Index); return this; }
    public WasmFunction Tee(Local l) { Op(0x22); _code.U32((uint)l.Index); return this; }
    public WasmFunction Select() => Op(0x1B);
    /// <summary>Calls function <paramref name="index"/> of the module (its index from <see cref="WasmModule.AddFunction"/>).</summary>
    public WasmFunction Call(int index) { Op(0x10); _code.U32((uint)index); return this; }

    public WasmFunction I32Load(uint offset = 0) => Mem(0x28, offset);
    public WasmFunction F32Load(uint offset = 0) => Mem(0x2A, offset);
    public WasmFunction I32Load16U(uint offset = 0) => Mem(0x2F, offset);
    public WasmFunction I32Load16S(uint offset = 0) => Mem(0x2E, offset);
    public WasmFunction I32Load8U(uint offset = 0) => Mem(0x2D, offset);
    public WasmFunction I32Load8S(uint offset = 0) => Mem(0x2C, offset);
    public WasmFunction F32Store(uint offset = 0) => Mem(0x38, offset);
    public WasmFunction I32Store(uint offset = 0) => Mem(0x36, offset);

    public WasmFunction I32Const(int v) { Op(0x41); _code.S32(v); return this; }
    public WasmFunction I64Const(long v)
    {
        Op(0x42);
        while (true)
        {
            byte b = (byte)(v & 0x7F);
            v >>= 7;
            bool done = (v == 0 && (b & 0x40) == 0) || (v == -1 && (b & 0x40) != 0);
            _code.Byte(done ? b : (byte)(b | 0x80));
            if (done) return this;
        }
    }
    public WasmFunction F64Const(double v) { Op(0x44); Span<byte> b = stackalloc byte[8]; BitConverter.TryWriteBytes(b, v); _code.Bytes(b); return this; }
    public WasmFunction F32Const(float v) { Op(0x43); Span<byte> b = stackalloc byte[4]; BitConverter.TryWriteBytes(b, v); _code.Bytes(b); return this; }

    public WasmFunction I32Eqz() => Op(0x45);
    public WasmFunction I32Eq() => Op(0x46);
    public WasmFunction I32Ne() => Op(0x47);
    public WasmFunction I32LtS() => Op(0x48);
    public WasmFunction I32LtU() => Op(0x49);
    public WasmFunction I32LeS() => Op(0x4C);
    public WasmFunction I32GtS() => Op(0x4A);
    public WasmFunction I32GeS() => Op(0x4E);
    public WasmFunction I32Add() => Op(0x6A);
    public WasmFunction I32Sub() => Op(0x6B);
    public WasmFunction I32Mul() => Op(0x6C);
    public WasmFunction I64x2Splat() => Simd(0x12);
    public WasmFunction F64x2Splat() => Simd(0x14);
    public WasmFunction F32x4Eq() => Simd(0x41);
    public WasmFunction F64x2Lt() => Simd(0x49);
    public WasmFunction F64x2Gt() => Simd(0x4A);
    public WasmFunction F32x4DemoteF64x2Zero() => Simd(0x5E);
    public WasmFunction F64x2PromoteLowF32x4() => Simd(0x5F);
    public WasmFunction I64x2Shl() => Simd(0xCB);
    public WasmFunction I64x2Add() => Simd(0xCE);
    public WasmFunction I64x2Sub() => Simd(0xD1);
    public WasmFunction F64x2Neg() => Simd(0xED);
    public WasmFunction F64x2Add() => Simd(0xF0);
    public WasmFunction F64x2Sub() => Simd(0xF1);
    public WasmFunction F64x2Mul() => Simd(0xF2);
    public WasmFunction F64x2Div() => Simd(0xF3);
    public WasmFunction I32DivU() => Op(0x6E);
    public WasmFunction I32RemU() => Op(0x70);
    public WasmFunction I32And() => Op(0x71);
    public WasmFunction I32Or() => Op(0x72);
    public WasmFunction I32Shl() => Op(0x74);
    public WasmFunction I32ShrS() => Op(0x75);
    public WasmFunction I32ShrU() => Op(0x76);
    public WasmFunction I32Xor() => Op(0x73);
    public WasmFunction I32Rotr() => Op(0x78);
    public WasmFunction F32Eq() => Op(0x5B);
    public WasmFunction F32Ne() => Op(0x5C);
    public WasmFunction F32Lt() => Op(0x5D);
    public WasmFunction F32Gt() => Op(0x5E);
    public WasmFunction F64Lt() => Op(0x63);
    public WasmFunction F64Gt() => Op(0x64);
    public WasmFunction I64Add() => Op(0x7C);
    public WasmFunction I64Sub() => Op(0x7D);
    public WasmFunction I64Shl() => Op(0x86);
    public WasmFunction F32Abs() => Op(0x8B);
    public WasmFunction F32Nearest() => Op(0x90);
    public WasmFunction F32Add() => Op(0x92);
    public WasmFunction F32Sub() => Op(0x93);
    public WasmFunction F32Mul() => Op(0x94);
    public WasmFunction F32Div() => Op(0x95);
    public WasmFunction F64Neg() => Op(0x9A);
    public WasmFunction F64Add() => Op(0xA0);
    public WasmFunction F64Sub() => Op(0xA1);
    public WasmFunction F64Mul() => Op(0xA2);
    public WasmFunction F64Div() => Op(0xA3);
    public WasmFunction F32ConvertI32S() => Op(0xB2);
    public WasmFunction F32Sqrt() => Op(0x91);
    public WasmFunction F32DemoteF64() => Op(0xB6);
    public WasmFunction I32ReinterpretF32() => Op(0xBC);
    public WasmFunction F64PromoteF32() => Op(0xBB);
    public WasmFunction I64ReinterpretF64() => Op(0xBD);
    public WasmFunction F32ReinterpretI32() => Op(0xBE);
    public WasmFunction F64ReinterpretI64() => Op(0xBF);

    // SIMD (v128 only: no relaxed SIMD, no FMA).
    public WasmFunction V128Load(uint offset = 0) => SimdMem(0x00, offset);
    public WasmFunction V128Store(uint offset = 0) => SimdMem(0x0B, offset);
    public WasmFunction V128Load64Zero(uint offset = 0) => SimdMem(0x5D, offset);
    public WasmFunction I8x16Shuffle(params ReadOnlySpan<byte> lanes)
    {
        if (lanes.Length != 16) throw new ArgumentException("a shuffle names 16 lanes");
        Simd(0x0D); _code.Bytes(lanes); return this;
    }
    public WasmFunction I8x16Splat() => Simd(0x0F);
    public WasmFunction I32x4Splat() => Simd(0x11);
    public WasmFunction I32x4ReplaceLane(byte lane) { Simd(0x1C); _code.Byte(lane); return this; }
    public WasmFunction F32x4Splat() => Simd(0x13);
    public WasmFunction I32x4ExtractLane(byte lane) { Simd(0x1B); _code.Byte(lane); return this; }
    public WasmFunction F32x4ExtractLane(byte lane) { Simd(0x1F); _code.Byte(lane); return this; }
    public WasmFunction F32x4ReplaceLane(byte lane) { Simd(0x20); _code.Byte(lane); return this; }
    public WasmFunction V128And() => Simd(0x4E);
    public WasmFunction V128Or() => Simd(0x50);
    public WasmFunction V128AnyTrue() => Simd(0x53);
    public WasmFunction I32x4Eq() => Simd(0x37);
    public WasmFunction I8x16ShrU() => Simd(0x6D);
    public WasmFunction I8x16NarrowI16x8S() => Simd(0x65);
    public WasmFunction F32x4Nearest() => Simd(0x6A);
    public WasmFunction I8x16Sub() => Simd(0x71);
    public WasmFunction I16x8NarrowI32x4S() => Simd(0x85);
    public WasmFunction I16x8ExtendLowI8x16S() => Simd(0x87);
    public WasmFunction I16x8ExtendHighI8x16S() => Simd(0x88);
    public WasmFunction I32x4ExtendLowI16x8S() => Simd(0xA7);
    public WasmFunction I32x4ExtendHighI16x8S() => Simd(0xA8);
    public WasmFunction I16x8Shl() => Simd(0x8B);
    public WasmFunction I16x8ShrS() => Simd(0x8C);
    public WasmFunction I32x4Shl() => Simd(0xAB);
    public WasmFunction I32x4ShrS() => Simd(0xAC);
    public WasmFunction V128Bitselect() => Simd(0x52);
    public WasmFunction I32x4Add() => Simd(0xAE);
    public WasmFunction I32x4MaxS() => Simd(0xB8);
    public WasmFunction I32x4DotI16x8S() => Simd(0xBA);
    public WasmFunction F32x4Add() => Simd(0xE4);
    public WasmFunction F32x4Mul() => Simd(0xE6);
    public WasmFunction I32x4TruncSatF32x4S() => Simd(0xF8);
    public WasmFunction F32x4ConvertI32x4S() => Simd(0xFA);

    // SIMD used by the block formats' unpacking (K-quants, IQ4, Q4_1/Q5_x).
    public WasmFunction V128Const(params ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != 16) throw new ArgumentException("a v128 constant is 16 bytes");
        Simd(0x0C); _code.Bytes(bytes); return this;
    }
    /// <summary>8 signed bytes from memory, each widened to 16 bits (v128.load8x8_s).</summary>
    public WasmFunction V128Load8x8S(uint offset = 0) => SimdMem(0x01, offset);
    public WasmFunction I8x16Swizzle() => Simd(0x0E);
    public WasmFunction I8x16Eq() => Simd(0x23);
    public WasmFunction I8x16Shl() => Simd(0x6B);
    public WasmFunction I8x16Add() => Simd(0x6E);
    public WasmFunction I16x8ExtaddPairwiseI8x16S() => Simd(0x7C);
    public WasmFunction I32x4ExtaddPairwiseI16x8S() => Simd(0x7E);
    public WasmFunction I16x8Add() => Simd(0x8E);
    public WasmFunction I32x4Mul() => Simd(0xB5);
}
