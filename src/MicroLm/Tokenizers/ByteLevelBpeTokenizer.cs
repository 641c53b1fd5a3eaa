using System.Text;
using MicroLm.Gguf;

namespace MicroLm.Tokenizers;

/// <summary>Byte-level BPE ("tokenizer.ggml.model" = "gpt2"), tokenizing as llama.cpp does:
/// user-defined tokens are cut out of the text first (longest first); each remaining stretch is split
/// into words by the pre-tokenizer named by "tokenizer.ggml.pre"; each word's UTF-8 bytes are written as
/// GPT-2's printable byte characters and merged pairwise by merge rank (lowest rank first, leftmost on
/// ties) using "tokenizer.ggml.merges".</summary>
internal sealed class ByteLevelBpeTokenizer : Tokenizer
{
    public const int TypeNormal = 1, TypeUnknown = 2, TypeControl = 3, TypeUserDefined = 4, TypeUnused = 5, TypeByte = 6;

    private readonly string[] _tokens;
    private readonly int[] _types;
    private readonly byte[][] _decoded;
    // Symbols: ids below the vocabulary size are tokens; above it are strings that occur in merges but
    // are not tokens (rare), kept so that merging works on them exactly as on strings.
    private readonly Dictionary<string, int> _symbols;
    private readonly List<string> _extraSymbols = [];
    // (left symbol << 32 | right symbol) → (rank << 32 | merged symbol)
    private readonly Dictionary<long, long> _merges;
    private readonly int[] _byteSymbols = new int[256];
    private readonly int[] _asciiTokens = new int[128];
    private readonly PreTokenizer _preTokenizer;
    private readonly UserDefinedMatcher? _userDefined;

    public override int VocabSize => _tokens.Length;
    public string PreTokenizerName => _preTokenizer.Name;
    public int MergeCount => _merges.Count;

    /// <param name="pre">"tokenizer.ggml.pre", or null when absent (GPT-2 / GPT-NeoX rules).</param>
    public ByteLevelBpeTokenizer(string[] tokens, int[] types, string[] merges, string? pre, int bos, int eos, bool addBos)
    {
        if (types.Length != tokens.Length)
            throw new MicroLmException($"tokenizer arrays disagree: {tokens.Length} tokens, {types.Length} types");
        _tokens = tokens;
        _types = types;
        BosId = bos; EosId = eos; AddBos = addBos;
        _preTokenizer = PreTokenizer.ForName(pre);

        _symbols = new Dictionary<string, int>(tokens.Length + 64, StringComparer.Ordinal);
        for (int i = 0; i < tokens.Length; i++) _symbols.TryAdd(tokens[i], i); // first occurrence wins
        var lookup = _symbols.GetAlternateLookup<ReadOnlySpan<char>>();

        for (int b = 0; b < 256; b++) _byteSymbols[b] = SymbolOf(lookup, ByteMap.CharOf(b).ToString());
        for (int c = 0; c < 128; c++)
            _asciiTokens[c] = _symbols.TryGetValue(((char)c).ToString(), out int id) && id < tokens.Length ? id : -1;

        _merges = new Dictionary<long, long>(merges.Length, PairComparer.Instance);
        char[] buffer = new char[256];
        for (int rank = 0; rank < merges.Length; rank++)
        {
            string m = merges[rank];
            int space = m.Length > 1 ? m.IndexOf(' ', 1) : -1;
            if (space < 0) continue;
            var left = m.AsSpan(0, space);
            var right = m.AsSpan(space + 1);
            int l = SymbolOf(lookup, left), r = SymbolOf(lookup, right);
            int len = left.Length + right.Length;
            if (buffer.Length < len) buffer = new char[len * 2];
            left.CopyTo(buffer);
            right.CopyTo(buffer.AsSpan(left.Length));
            int merged = SymbolOf(lookup, buffer.AsSpan(0, len));
            _merges.TryAdd(((long)l << 32) | (uint)r, ((long)rank << 32) | (uint)merged); // first (lowest) rank wins
        }

        _decoded = new byte[tokens.Length][];
        var userDefined = new List<int>();
        for (int i = 0; i < tokens.Length; i++)
        {
            switch (types[i])
            {
                case TypeControl: _decoded[i] = []; break;
                case TypeUserDefined:
                    _decoded[i] = Encoding.UTF8.GetBytes(tokens[i]);
                    if (tokens[i].Length > 0) userDefined.Add(i);
                    break;
                default: _decoded[i] = ByteMap.DecodeToBytes(tokens[i]); break;
            }
        }
        if (userDefined.Count > 0) _userDefined = new UserDefinedMatcher(tokens, userDefined);
    }

    private int SymbolOf(Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> lookup, ReadOnlySpan<char> text)
    {
        if (lookup.TryGetValue(text, out int id)) return id;
        id = _tokens.Length + _extraSymbols.Count;
        string s = text.ToString();
        _extraSymbols.Add(s);
        _symbols.Add(s, id);
        return id;
    }

    public static ByteLevelBpeTokenizer FromGguf(GgufFile file)
    {
        var tokens = file.Get("tokenizer.ggml.tokens").AsStringArray();
        int n = tokens.Length;
        int[] types;
        if (file.TryGet("tokenizer.ggml.token_type", out var t)) types = t.AsSpan<int>().ToArray();
        else { types = new int[n]; Array.Fill(types, TypeNormal); }
        if (types.Length < n) throw new MicroLmException($"tokenizer.ggml.token_type has {types.Length} entries for {n} tokens");
        if (types.Length > n) types = types[..n];
        string[] merges = file.TryGet("tokenizer.ggml.merges", out var m) ? m.AsStringArray() : [];
        return new ByteLevelBpeTokenizer(tokens, types, merges, file.GetString("tokenizer.ggml.pre"),
            OptionalId(file, "tokenizer.ggml.bos_token_id", n),
            OptionalId(file, "tokenizer.ggml.eos_token_id", n),
            file.GetBool("tokenizer.ggml.add_bos_token") ?? false);
    }

    public override string TokenText(int id) => (uint)id < (uint)_tokens.Length ? _tokens[id] : $"<invalid {id}>";

    public override int TokenType(int id) => (uint)id < (uint)_types.Length ? _types[id] : 0;

    public override ReadOnlySpan<byte> Decode(int previous, int id)
    {
        if ((uint)id >= (uint)_decoded.Length) throw new MicroLmException($"token id {id} is outside the vocabulary of {_decoded.Length}");
        return _decoded[id];
    }

    public override List<int> Encode(string text, bool addBos)
    {
        var output = new List<int>(text.Length / 3 + 4);
        if (addBos && BosId >= 0) output.Add(BosId);
        if (text.Length == 0) return output;

        int[] cps = Utf.ToCodepoints(text);
        var session = new Session(this, output);
        if (_userDefined == null)
        {
            session.EncodeFragment(cps);
            return output;
        }
        int pos = 0;
        foreach (var (start, length, id) in _userDefined.Find(cps))
        {
            if (start > pos) session.EncodeFragment(cps.AsSpan(pos, start - pos));
            output.Add(id);
            pos = start + length;
        }
        if (pos < cps.Length) session.EncodeFragment(cps.AsSpan(pos));
        return output;
    }

    /// <summary>Working buffers for one Encode call; they grow with the longest word and are reused.</summary>
    private sealed class Session(ByteLevelBpeTokenizer owner, List<int> output)
    {
        private readonly List<int> _pieces = [], _scratchA = [], _scratchB = [];
        private byte[] _bytes = new byte[64];
        private const int ShortWord = 24;
        private int[] _symbol = new int[64], _prev = new int[64], _next = new int[64], _rank = new int[64], _merged = new int[64];
        private readonly PriorityQueue<Bigram, long> _queue = new();

        public void EncodeFragment(ReadOnlySpan<int> cps)
        {
            _pieces.Clear();
            owner._preTokenizer.Split(cps, _pieces, _scratchA, _scratchB);
            int start = 0;
            foreach (int len in _pieces)
            {
                EncodeWord(cps.Slice(start, len));
                start += len;
            }
        }

        private void EncodeWord(ReadOnlySpan<int> word)
        {
            if (_bytes.Length < word.Length * 4) _bytes = new byte[word.Length * 8];
            int n = 0;
            foreach (int cp in word) n += Utf.Encode(cp, _bytes.AsSpan(n));
            if (n == 1) { Emit(owner._byteSymbols[_bytes[0]]); return; }

            if (_symbol.Length < n)
            {
                _symbol = new int[n * 2]; _prev = new int[n * 2]; _next = new int[n * 2];
                _rank = new int[n * 2]; _merged = new int[n * 2];
            }
            for (int i = 0; i < n; i++)
            {
                _symbol[i] = owner._byteSymbols[_bytes[i]];
                _prev[i] = i - 1;
                _next[i] = i + 1 < n ? i + 1 : -1;
            }
            if (n <= ShortWord) MergeByScan(n); else MergeByQueue(n);
            for (int i = 0; i >= 0; i = _next[i]) Emit(_symbol[i]);
        }

        /// <summary>Short words: keep each adjacent pair's rank and scan for the lowest (leftmost on ties).</summary>
        private void MergeByScan(int n)
        {
            for (int i = 0; i < n; i++) UpdatePair(i);
            while (true)
            {
                int best = int.MaxValue, left = -1;
                for (int i = 0; i >= 0; i = _next[i])
                    if (_rank[i] < best) { best = _rank[i]; left = i; }
                if (left < 0) return;
                int right = _next[left];
                _symbol[left] = _merged[left];
                _next[left] = _next[right];
                if (_next[right] >= 0) _prev[_next[right]] = left;
                UpdatePair(left);
                if (_prev[left] >= 0) UpdatePair(_prev[left]);
            }
        }

        /// <summary>Rank and result of merging symbol <paramref name="i"/> with the one after it.</summary>
        private void UpdatePair(int i)
        {
            int right = _next[i];
            if (right >= 0 && owner._merges.TryGetValue(((long)_symbol[i] << 32) | (uint)_symbol[right], out long value))
            {
                _rank[i] = (int)(value >> 32);
                _merged[i] = (int)value;
            }
            else _rank[i] = int.MaxValue;
        }

        /// <summary>Long words: a priority queue of candidate pairs keyed by (rank, position), so the work
        /// grows as n log n.</summary>
        private void MergeByQueue(int n)
        {
            _queue.Clear();
            for (int i = 0; i + 1 < n; i++) TryQueue(i, i + 1);
            while (_queue.TryDequeue(out var bigram, out _))
            {
                int l = bigram.Left, r = bigram.Right;
                // Skip pairs whose sides changed since they were queued.
                if (_symbol[l] != bigram.LeftSymbol || _symbol[r] != bigram.RightSymbol || _next[l] != r) continue;
                _symbol[l] = bigram.Merged;
                _symbol[r] = -1;
                _next[l] = _next[r];
                if (_next[r] >= 0) _prev[_next[r]] = l;
                TryQueue(_prev[l], l);
                TryQueue(l, _next[l]);
            }
        }

        private void TryQueue(int left, int right)
        {
            if (left < 0 || right < 0) return;
            int ls = _symbol[left], rs = _symbol[right];
            if (!owner._merges.TryGetValue(((long)ls << 32) | (uint)rs, out long value)) return;
            int rank = (int)(value >> 32);
            _queue.Enqueue(new Bigram(left, right, ls, rs, (int)value), ((long)rank << 32) | (uint)left);
        }

        private void Emit(int symbol)
        {
            if (symbol < owner._tokens.Length) { output.Add(symbol); return; }
            // A merged string that is not a token: fall back to the tokens of its single ASCII bytes, as
            // llama.cpp does (other bytes have no token and are dropped).
            foreach (char c in owner._extraSymbols[symbol - owner._tokens.Length])
                if (c < 128 && owner._asciiTokens[c] >= 0) output.Add(owner._asciiTokens[c]);
        }
    }

    private readonly record struct Bigram(int Left, int Right, int LeftSymbol, int RightSymbol, int Merged);

    /// <summary>Hashes a (left &lt;&lt; 32 | right) pair key. long's own hash is left ^ right, which puts most
    /// merges of a vocabulary into a few thousand buckets.</summary>
    private sealed class PairComparer : IEqualityComparer<long>
    {
        public static readonly PairComparer Instance = new();
        public bool Equals(long x, long y) => x == y;
        public int GetHashCode(long key) => (int)((ulong)(key * unchecked((long)0x9E3779B97F4A7C15)) >> 32);
    }
}

/// <summary>GPT-2's mapping between bytes and printable characters: the printable Latin-1 bytes
/// ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves; the other 68 bytes, in increasing order, are
/// written as U+0100, U+0101, ....</summary>
internal static class ByteMap
{
    private static readonly char[] ByteToChar = BuildByteToChar();
    private static readonly short[] CharToByte = BuildCharToByte();

    private static bool Printable(int b) => b is (>= 0x21 and <= 0x7E) or (>= 0xA1 and <= 0xAC) or (>= 0xAE and <= 0xFF);

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int next = 0;
        for (int b = 0; b < 256; b++) map[b] = Printable(b) ? (char)b : (char)(0x100 + next++);
        return map;
    }

    private static short[] BuildCharToByte()
    {
        var map = new short[0x100 + 68];
        Array.Fill(map, (short)-1);
        for (int b = 0; b < 256; b++) map[ByteToChar[b]] = (short)b;
        return map;
    }

    public static char CharOf(int b) => ByteToChar[b];

    /// <summary>The bytes a vocabulary string stands for; characters outside the mapping are kept as their
    /// own UTF-8.</summary>
    public static byte[] DecodeToBytes(string token)
    {
        bool plain = true;
        foreach (char c in token) if (c >= CharToByte.Length || CharToByte[c] < 0) { plain = false; break; }
        if (plain)
        {
            var bytes = new byte[token.Length];
            for (int i = 0; i < token.Length; i++) bytes[i] = (byte)CharToByte[token[i]];
            return bytes;
        }
        var list = new List<byte>(token.Length * 2);
        Span<byte> utf8 = stackalloc byte[4];
        var cps = Utf.ToCodepoints(token);
        foreach (int cp in cps)
        {
            if (cp < CharToByte.Length && CharToByte[cp] >= 0) { list.Add((byte)CharToByte[cp]); continue; }
            int n = Utf.Encode(cp, utf8);
            for (int k = 0; k < n; k++) list.Add(utf8[k]);
        }
        return list.ToArray();
    }
}

/// <summary>Finds user-defined tokens in text the way llama.cpp's special-token partition does with
/// parse_special off: tokens are taken in order of decreasing UTF-8 length (then id); each claims its
/// leftmost non-overlapping occurrences in the text not yet claimed by an earlier token.</summary>
internal sealed class UserDefinedMatcher
{
    private readonly Dictionary<long, int> _children = [];   // (node << 21 | code point) → child node
    private readonly List<int> _terminal = [-1];              // node → priority of the token ending there, or -1
    private readonly int[] _idByPriority;
    private readonly int[] _lengthByPriority;                  // in code points
    private readonly bool[] _firstBmp = new bool[0x10000];
    private readonly HashSet<int> _firstOther = [];

    public UserDefinedMatcher(string[] tokens, List<int> ids)
    {
        var ordered = ids.OrderByDescending(id => Encoding.UTF8.GetByteCount(tokens[id])).ThenBy(id => id).ToArray();
        _idByPriority = ordered;
        _lengthByPriority = new int[ordered.Length];
        for (int p = 0; p < ordered.Length; p++)
        {
            var cps = Utf.ToCodepoints(tokens[ordered[p]]);
            _lengthByPriority[p] = cps.Length;
            if (cps[0] < 0x10000) _firstBmp[cps[0]] = true; else _firstOther.Add(cps[0]);
            int node = 0;
            foreach (int cp in cps)
            {
                long key = ((long)node << 21) | (uint)cp;
                if (!_children.TryGetValue(key, out int child))
                {
                    child = _terminal.Count;
                    _terminal.Add(-1);
                    _children.Add(key, child);
                }
                node = child;
            }
            if (_terminal[node] < 0) _terminal[node] = p;
        }
    }

    /// <summary>The claimed occurrences (start, length in code points, token id), in text order.</summary>
    public List<(int Start, int Length, int Id)> Find(int[] cps)
    {
        var found = new List<(int Priority, int Start)>();
        for (int pos = 0; pos < cps.Length; pos++)
        {
            int c = cps[pos];
            if (c < 0x10000 ? !_firstBmp[c] : !_firstOther.Contains(c)) continue;
            int node = 0;
            for (int p = pos; p < cps.Length; p++)
            {
                if (!_children.TryGetValue(((long)node << 21) | (uint)cps[p], out node)) break;
                if (_terminal[node] >= 0) found.Add((_terminal[node], pos));
            }
        }
        var result = new List<(int Start, int Length, int Id)>();
        if (found.Count == 0) return result;

        found.Sort();
        var claimed = new bool[cps.Length];
        foreach (var (priority, start) in found)
        {
            int length = _lengthByPriority[priority];
            if (claimed.AsSpan(start, length).Contains(true)) continue;
            claimed.AsSpan(start, length).Fill(true);
            result.Add((start, length, _idByPriority[priority]));
        }
        result.Sort((a, b) => a.Start.CompareTo(b.Start));
        return result;
    }
}
