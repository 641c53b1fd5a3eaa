using System.Text;
using MicroLm.Gguf;

namespace MicroLm.Tokenizers;

/// <summary>SentencePiece-style BPE ("tokenizer.ggml.model" = "llama"): spaces become ▁, an optional
/// space prefix, then the adjacent pair whose merged piece has the highest score is merged first (the
/// leftmost on ties) until no merged piece is in the vocabulary; characters left outside the
/// vocabulary fall back to their UTF-8 bytes as &lt;0xNN&gt; tokens.</summary>
internal sealed class SentencePieceTokenizer : Tokenizer
{
    private const char SpaceMarker = '\u2581';
    public const int TypeNormal = 1, TypeUnknown = 2, TypeControl = 3, TypeUserDefined = 4, TypeUnused = 5, TypeByte = 6;

    private readonly string[] _pieces;
    private readonly float[] _scores;
    private readonly int[] _types;
    private readonly byte[][] _decoded;           // what each token prints as
    private readonly Dictionary<string, int> _ids;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly int[] _byteIds = new int[256];
    private readonly int _unkId;

    public bool AddSpacePrefix { get; }
    public override int VocabSize => _pieces.Length;

    public SentencePieceTokenizer(string[] pieces, float[] scores, int[] types, int bos, int eos, int unk,
        bool addBos, bool addSpacePrefix)
    {
        if (scores.Length != pieces.Length || types.Length != pieces.Length)
            throw new MicroLmException($"tokenizer arrays disagree: {pieces.Length} tokens, {scores.Length} scores, {types.Length} types");
        _pieces = pieces; _scores = scores; _types = types;
        BosId = bos; EosId = eos; _unkId = unk; AddBos = addBos; AddSpacePrefix = addSpacePrefix;
        _ids = new Dictionary<string, int>(pieces.Length, StringComparer.Ordinal);
        for (int i = 0; i < pieces.Length; i++) _ids.TryAdd(pieces[i], i); // first occurrence wins
        _lookup = _ids.GetAlternateLookup<ReadOnlySpan<char>>();
        Array.Fill(_byteIds, -1);
        _decoded = new byte[pieces.Length][];
        for (int i = 0; i < pieces.Length; i++)
        {
            int b = ParseByteToken(pieces[i]);
            if (b >= 0 && (types[i] == TypeByte || types[i] == TypeNormal) && _byteIds[b] < 0) _byteIds[b] = i;
            _decoded[i] = types[i] switch
            {
                TypeControl => [],
                TypeByte when b >= 0 => [(byte)b],
                _ => Encoding.UTF8.GetBytes(pieces[i].Replace(SpaceMarker, ' ')),
            };
        }
    }

    public static SentencePieceTokenizer FromGguf(GgufFile file)
    {
        var pieces = file.Get("tokenizer.ggml.tokens").AsStringArray();
        int n = pieces.Length;
        float[] scores = file.TryGet("tokenizer.ggml.scores", out var s) ? s.AsSpan<float>().ToArray() : new float[n];
        int[] types;
        if (file.TryGet("tokenizer.ggml.token_type", out var t)) types = t.AsSpan<int>().ToArray();
        else { types = new int[n]; Array.Fill(types, TypeNormal); }
        int bos = OptionalId(file, "tokenizer.ggml.bos_token_id", n);
        int eos = OptionalId(file, "tokenizer.ggml.eos_token_id", n);
        int unk = OptionalId(file, "tokenizer.ggml.unknown_token_id", n);
        return new SentencePieceTokenizer(pieces, scores, types,
            bos < 0 ? 1 : bos, eos < 0 ? 2 : eos, unk < 0 ? 0 : unk,
            file.GetBool("tokenizer.ggml.add_bos_token") ?? true,
            file.GetBool("tokenizer.ggml.add_space_prefix") ?? true);
    }

    /// <summary>"&lt;0x4A&gt;" → 0x4A, anything else → -1.</summary>
    private static int ParseByteToken(string piece)
    {
        if (piece.Length != 6 || !piece.StartsWith("<0x", StringComparison.Ordinal) || piece[5] != '>') return -1;
        return int.TryParse(piece.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out int b) ? b : -1;
    }

    public override int TokenType(int id) => (uint)id < (uint)_types.Length ? _types[id] : 0;

    public override string TokenText(int id) => (uint)id < (uint)_pieces.Length ? _pieces[id] : $"<invalid {id}>";

    public override ReadOnlySpan<byte> Decode(int previous, int id)
    {
        if ((uint)id >= (uint)_decoded.Length) throw new MicroLmException($"token id {id} is outside the vocabulary of {_decoded.Length}");
        var bytes = _decoded[id];
        // The space prefix added when encoding is not part of the text: drop it after BOS (as llama2.c and llama.cpp do).
        if ((previous == BosId || previous < 0 && AddSpacePrefix) && bytes.Length > 0 && bytes[0] == (byte)' ' && _types[id] != TypeByte)
            return bytes.AsSpan(1);
        return bytes;
    }

    public override List<int> Encode(string text, bool addBos)
    {
        var output = new List<int>(text.Length + 2);
        if (addBos && BosId >= 0) output.Add(BosId);
        if (text.Length == 0) return output;

        string normalized = (AddSpacePrefix ? " " + text : text).Replace(' ', SpaceMarker);
        var symbols = new List<Symbol>(normalized.Length);
        for (int i = 0; i < normalized.Length;)
        {
            int len = char.IsHighSurrogate(normalized[i]) && i + 1 < normalized.Length && char.IsLowSurrogate(normalized[i + 1]) ? 2 : 1;
            symbols.Add(new Symbol { Start = i, Length = len, Prev = symbols.Count - 1, Next = i + len < normalized.Length ? symbols.Count + 1 : -1 });
            i += len;
        }

        // Highest score first; on equal scores, the leftmost pair.
        var queue = new PriorityQueue<(int Left, int Right, int Length), (float Score, int Left)>(
            Comparer<(float Score, int Left)>.Create((a, b) => a.Score != b.Score ? b.Score.CompareTo(a.Score) : a.Left.CompareTo(b.Left)));
        void TryAddPair(int left, int right)
        {
            if (left < 0 || right < 0) return;
            var span = normalized.AsSpan(symbols[left].Start, symbols[left].Length + symbols[right].Length);
            if (_lookup.TryGetValue(span, out int id))
                queue.Enqueue((left, right, span.Length), (_scores[id], left));
        }
        for (int i = 1; i < symbols.Count; i++) TryAddPair(i - 1, i);

        while (queue.TryDequeue(out var pair, out _))
        {
            var left = symbols[pair.Left];
            var right = symbols[pair.Right];
            // Skip pairs made stale by an earlier merge.
            if (left.Length == 0 || right.Length == 0 || left.Length + right.Length != pair.Length || left.Next != pair.Right) continue;
            left.Length += right.Length;
            left.Next = right.Next;
            right.Length = 0;
            if (right.Next >= 0) { var nx = symbols[right.Next]; nx.Prev = pair.Left; symbols[right.Next] = nx; }
            symbols[pair.Left] = left;
            symbols[pair.Right] = right;
            TryAddPair(left.Prev, pair.Left);
            TryAddPair(pair.Left, left.Next);
        }

        Span<byte> utf8 = stackalloc byte[8];
        for (int i = 0; i >= 0 && i < symbols.Count; i = symbols[i].Next)
        {
            var span = normalized.AsSpan(symbols[i].Start, symbols[i].Length);
            if (_lookup.TryGetValue(span, out int id)) { output.Add(id); continue; }
            int n = Encoding.UTF8.GetBytes(span, utf8);
            for (int k = 0; k < n; k++)
                output.Add(_byteIds[utf8[k]] >= 0 ? _byteIds[utf8[k]] : _unkId);
        }
        return output;
    }

    private struct Symbol
    {
        public int Start, Length, Prev, Next;
    }
}
