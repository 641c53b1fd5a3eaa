using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using MicroLm.Gguf;
using MicroLm.Tensors;

namespace MicroLm.Models;

/// <summary>Converts llama2.c checkpoints and tokenizers to GGUF with llama.cpp's key and tensor names.
/// Formats (from llama2.c's run.c and export.py):
///  legacy: 7 × i32 (dim, hidden, layers, heads, kv heads, vocab — negative when the classifier is
///    separate —, seq_len), then f32 weights: embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3,
///    rms_final, two RoPE tables (seq_len × head_size/2 each), [classifier].
///  "ak42" v1: 256-byte header (magic, version, the 7 i32, shared-classifier byte), f32 weights in the
///    order attention norms, ffn norms, final norm, embedding, wq, wk, wv, wo, w1, w2, w3, [classifier].
///  "ak42" v2: the same header plus i32 group size; norms as f32, then each matrix as i8 values
///    followed by f32 scales, one per group.
///  tokenizer: i32 max token length, then per token f32 score, i32 length, bytes.</summary>
internal static class Llama2cCheckpoint
{
    private const uint Magic = 0x616b3432; // "ak42"

    public sealed record Header(int Dim, int HiddenDim, int Layers, int Heads, int KvHeads, int VocabSize, int SeqLen, bool SharedClassifier);

    public static byte[] ToGguf(ReadOnlyMemory<byte> model, ReadOnlySpan<byte> tokenizer)
    {
        var (header, weights) = ReadModel(model);
        var (pieces, scores) = ReadTokenizer(tokenizer, header.VocabSize);
        var w = new GgufWriter();
        w.Add("general.architecture", "llama");
        w.Add("general.name", "llama2.c");
        w.Add("llama.context_length", (uint)header.SeqLen);
        w.Add("llama.embedding_length", (uint)header.Dim);
        w.Add("llama.feed_forward_length", (uint)header.HiddenDim);
        w.Add("llama.attention.head_count", (uint)header.Heads);
        w.Add("llama.attention.head_count_kv", (uint)header.KvHeads);
        w.Add("llama.block_count", (uint)header.Layers);
        w.Add("llama.rope.dimension_count", (uint)(header.Dim / header.Heads));
        w.Add("llama.attention.layer_norm_rms_epsilon", 1e-5f);
        w.Add("tokenizer.ggml.model", "llama");
        w.Add("tokenizer.ggml.tokens", pieces.Select((p, i) => GgufPiece(p, i)).ToArray());
        w.Add("tokenizer.ggml.scores", scores);
        w.Add("tokenizer.ggml.token_type", pieces.Select((p, i) => TokenType(p, i)).ToArray());
        w.Add("tokenizer.ggml.unknown_token_id", 0u);
        w.Add("tokenizer.ggml.bos_token_id", 1u);
        w.Add("tokenizer.ggml.eos_token_id", 2u);
        foreach (var (name, shape, data) in weights) w.AddTensor(name, GgmlType.F32, shape, data);
        return w.ToArray();
    }

    /// <summary>The checkpoint's tensors, named as llama.cpp names them, in ggml shape order.</summary>
    public static (Header Header, List<(string Name, long[] Shape, byte[] Data)> Tensors) ReadModel(ReadOnlyMemory<byte> memory)
    {
        var file = memory.Span;
        if (file.Length < 28) throw new MicroLmException($"llama2.c checkpoint is {file.Length} bytes, too short for a header");
        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(file);
        int version = 0, groupSize = 0, offset;
        Header h;
        if (magic == Magic)
        {
            if (file.Length < 256) throw new MicroLmException("llama2.c checkpoint ends inside its 256-byte header");
            version = BinaryPrimitives.ReadInt32LittleEndian(file[4..]);
            if (version is not (1 or 2)) throw new MicroLmException($"llama2.c checkpoint version {version} is not supported (1: float32, 2: int8)");
            var p = MemoryMarshal.Cast<byte, int>(file.Slice(8, 28));
            h = new Header(p[0], p[1], p[2], p[3], p[4], p[5], p[6], file[36] != 0);
            if (version == 2) groupSize = BinaryPrimitives.ReadInt32LittleEndian(file[37..]);
            offset = 256;
        }
        else
        {
            var p = MemoryMarshal.Cast<byte, int>(file[..28]);
            // The vocabulary's sign says whether the classifier is shared; −2³¹ has no positive counterpart.
            int vocab = p[5] == int.MinValue ? 0 : System.Math.Abs(p[5]);
            h = new Header(p[0], p[1], p[2], p[3], p[4], vocab, p[6], p[5] > 0);
            offset = 28;
        }
        if (h.Dim <= 0 || h.HiddenDim <= 0 || h.Layers <= 0 || h.Heads <= 0 || h.KvHeads <= 0 || h.VocabSize <= 0 || h.SeqLen <= 0
            || h.Dim % h.Heads != 0 || h.Heads % h.KvHeads != 0 || h.Dim > 1 << 16 || h.HiddenDim > 1 << 18 || h.Layers > 1024 || h.VocabSize > 1 << 22)
            throw new MicroLmException($"llama2.c header is not a valid model: {h}");
        if (version == 2 && (groupSize <= 0 || h.Dim % groupSize != 0))
            throw new MicroLmException($"llama2.c int8 checkpoint has an invalid group size {groupSize}");

        int dim = h.Dim, hidden = h.HiddenDim, L = h.Layers, kvDim = dim / h.Heads * h.KvHeads;
        var reader = new WeightReader(memory, offset, groupSize);
        var t = new List<(string, long[], byte[])>();
        void Matrices(string name, int rows, int cols, bool quantized)
        {
            for (int l = 0; l < L; l++) t.Add(($"blk.{l}.{name}.weight", [cols, rows], reader.Read((long)rows * cols, quantized)));
        }
        void Norms(string name)
        {
            for (int l = 0; l < L; l++) t.Add(($"blk.{l}.{name}.weight", [dim], reader.Read(dim, false)));
        }
        if (version == 0)
        {
            t.Add(("token_embd.weight", [dim, h.VocabSize], reader.Read((long)h.VocabSize * dim, false)));
            Norms("attn_norm");
            Matrices("attn_q", dim, dim, false);
            Matrices("attn_k", kvDim, dim, false);
            Matrices("attn_v", kvDim, dim, false);
            Matrices("attn_output", dim, dim, false);
            Norms("ffn_norm");
            Matrices("ffn_gate", hidden, dim, false);
            Matrices("ffn_down", dim, hidden, false);
            Matrices("ffn_up", hidden, dim, false);
            t.Add(("output_norm.weight", [dim], reader.Read(dim, false)));
            reader.Skip((long)h.SeqLen * (dim / h.Heads)); // legacy RoPE tables: recomputed, not stored
            if (!h.SharedClassifier) t.Add(("output.weight", [dim, h.VocabSize], reader.Read((long)h.VocabSize * dim, false)));
        }
        else
        {
            bool q = version == 2;
            Norms("attn_norm");
            Norms("ffn_norm");
            t.Add(("output_norm.weight", [dim], reader.Read(dim, false)));
            t.Add(("token_embd.weight", [dim, h.VocabSize], reader.Read((long)h.VocabSize * dim, q)));
            Matrices("attn_q", dim, dim, q);
            Matrices("attn_k", kvDim, dim, q);
            Matrices("attn_v", kvDim, dim, q);
            Matrices("attn_output", dim, dim, q);
            Matrices("ffn_gate", hidden, dim, q);
            Matrices("ffn_down", dim, hidden, q);
            Matrices("ffn_up", hidden, dim, q);
            if (!h.SharedClassifier) t.Add(("output.weight", [dim, h.VocabSize], reader.Read((long)h.VocabSize * dim, q)));
        }
        return (h, t);
    }

    public static (string[] Pieces, float[] Scores) ReadTokenizer(ReadOnlySpan<byte> file, int vocabSize)
    {
        int pos = 4;
        var pieces = new string[vocabSize];
        var scores = new float[vocabSize];
        for (int i = 0; i < vocabSize; i++)
        {
            if (pos + 8 > file.Length) throw new MicroLmException($"llama2.c tokenizer ends after {i} of {vocabSize} tokens");
            scores[i] = BinaryPrimitives.ReadSingleLittleEndian(file[pos..]);
            int len = BinaryPrimitives.ReadInt32LittleEndian(file[(pos + 4)..]);
            pos += 8;
            if (len < 0 || len > file.Length - pos) throw new MicroLmException($"llama2.c tokenizer: token {i} has a bad length {len}");
            pieces[i] = Encoding.UTF8.GetString(file.Slice(pos, len));
            pos += len;
        }
        return (pieces, scores);
    }

    /// <summary>A llama2.c tokenizer file as a SentencePiece tokenizer (BOS 1, EOS 2, UNK 0, as llama2.c uses them).</summary>
    public static Tokenizers.SentencePieceTokenizer LoadTokenizer(ReadOnlySpan<byte> file, int vocabSize)
    {
        var (pieces, scores) = ReadTokenizer(file, vocabSize);
        return new Tokenizers.SentencePieceTokenizer(pieces.Select(GgufPiece).ToArray(), scores,
            pieces.Select(TokenType).ToArray(), bos: 1, eos: 2, unk: 0, addBos: true, addSpacePrefix: true);
    }

    /// <summary>llama2.c keeps spaces and "\n&lt;s&gt;\n"-style control texts; GGUF SentencePiece vocabularies use ▁ and "&lt;s&gt;".</summary>
    public static string GgufPiece(string piece, int id) => id switch
    {
        0 => "<unk>",
        1 => "<s>",
        2 => "</s>",
        _ => piece.Replace(' ', '\u2581'),
    };

    /// <summary>The GGUF token type of a llama2.c piece: 2 unknown (id 0), 3 control (BOS/EOS), 6 byte (&lt;0xNN&gt;), else 1 normal.</summary>
    public static int TokenType(string piece, int id) =>
        id == 0 ? 2 : id is 1 or 2 ? 3
        : piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece.EndsWith('>') ? 6 : 1;

    private sealed class WeightReader(ReadOnlyMemory<byte> memory, int offset, int groupSize)
    {
        private ReadOnlySpan<byte> _file => memory.Span;
        private long _pos = offset;

        public void Skip(long floats) => _pos += floats * 4; // trailing tables may be absent in trimmed files

        public byte[] Read(long count, bool quantized)
        {
            long bytes = quantized ? count + count / groupSize * 4 : count * 4;
            if (_pos + bytes > _file.Length)
                throw new MicroLmException($"llama2.c checkpoint is truncated: {bytes} bytes needed at offset {_pos}, file is {_file.Length} bytes");
            var result = new byte[count * 4];
            if (!quantized) _file.Slice((int)_pos, (int)bytes).CopyTo(result);
            else
            {
                var q = MemoryMarshal.Cast<byte, sbyte>(_file.Slice((int)_pos, (int)count));
                var s = MemoryMarshal.Cast<byte, float>(_file.Slice((int)(_pos + count), (int)(count / groupSize * 4)));
                var f = MemoryMarshal.Cast<byte, float>(result.AsSpan());
                for (int i = 0; i < count; i++) f[i] = q[i] * s[i / groupSize];
            }
            _pos += bytes;
            return result;
        }
    }
}
