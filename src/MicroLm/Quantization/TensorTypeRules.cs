using MicroLm.Tensors;

namespace MicroLm.Quantization;

/// <summary>Which tensor type each tensor gets in a preset, by llama-quantize's rules (llama_tensor_get_type
/// without an importance matrix, overrides or --pure): the output matrix (and the embedding when it is
/// also the output) at Q6_K, more bits for attn_v and ffn_down in chosen layers for the _M/_L mixes, and
/// fallbacks when a row does not fit the type's block. Call <see cref="Choose"/> once per tensor in the
/// order the file will be written (layer counters advance as llama.cpp's do).</summary>
internal sealed class TensorTypeRules
{
    private readonly QuantPreset _preset;
    private readonly string _arch;
    private readonly int _layers, _gqa;
    private readonly bool _tiedEmbedding, _is70B;
    private int _attnV, _ffnDown;
    private readonly int _attnVCount;

    /// <summary>Rows that fit no block of the chosen type and were given a fallback type.</summary>
    public List<string> Fallbacks { get; } = [];

    public TensorTypeRules(QuantPreset preset, string arch, int layers, int heads, int kvHeads, IReadOnlyList<string> tensorNames)
    {
        _preset = preset;
        _arch = arch;
        _layers = layers;
        _gqa = kvHeads > 0 ? heads / kvHeads : 0;
        _tiedEmbedding = !tensorNames.Contains("output.weight");
        _attnVCount = tensorNames.Count(n => IsAttnV(Category(n)));
        // llama.cpp treats an 80-layer LLaMA with grouped-query attention as its 70B model and gives its attn_v more bits.
        _is70B = arch == "llama" && layers == 80 && heads != kvHeads;
    }

    private enum Cat { TokenEmbd, AttnQ, AttnV, AttnK, AttnQkv, AttnKvB, AttnOutput, FfnUp, FfnGate, FfnDown, Output, Other }

    private static Cat Category(string name)
    {
        if (name == "output.weight") return Cat.Output;
        if (name is "token_embd.weight" or "per_layer_token_embd.weight") return Cat.TokenEmbd;
        if (name.Contains("attn_qkv.weight")) return Cat.AttnQkv;
        if (name.Contains("attn_kv_b.weight")) return Cat.AttnKvB;
        if (name.Contains("attn_v.weight")) return Cat.AttnV;
        if (name.Contains("attn_k.weight")) return Cat.AttnK;
        if (name.Contains("attn_q.weight")) return Cat.AttnQ;
        if (name.Contains("attn_output.weight")) return Cat.AttnOutput;
        if (name.Contains("ffn_up")) return Cat.FfnUp;
        if (name.Contains("ffn_gate")) return Cat.FfnGate;
        if (name.Contains("ffn_down")) return Cat.FfnDown;
        return Cat.Other;
    }

    private static bool IsAttnV(Cat c) => c is Cat.AttnV or Cat.AttnQkv or Cat.AttnKvB;

    /// <summary>Whether llama-quantize converts this tensor at all: matrices named "*weight", except norms,
    /// position embeddings, token types, expert gates, convolution kernels and a few tiny special matrices.</summary>
    public static bool AllowsQuantization(string name, long[] shape)
    {
        int dims = shape.Length;
        while (dims > 1 && shape[dims - 1] == 1) dims--;
        if (dims < 2 || !name.EndsWith("weight", StringComparison.Ordinal)) return false;
        string[] never =
        [
            "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
            "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight", "time_mix_first.weight",
            "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight",
            "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight",
            "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight",
            "attn_rel_b.weight", ".position_embd", ".rel_pos", ".patch_embd", ".patch_merger",
        ];
        foreach (var n in never) if (name.Contains(n, StringComparison.Ordinal)) return false;
        return name is not ("position_embd.weight" or "token_types.weight");
    }

    private static bool UseMoreBits(int i, int n) => i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;

    /// <summary>The type <paramref name="name"/> (currently <paramref name="current"/>) gets in this preset.</summary>
    public GgmlType Choose(string name, long[] shape, GgmlType current)
    {
        if (!AllowsQuantization(name, shape)) return current;
        var type = _preset.DefaultType;
        if (!_preset.IsQuantized) return type;
        type = Mix(name, shape[0], type);
        return Fallback(name, shape[0], type);
    }

    private GgmlType Mix(string name, long columns, GgmlType type)
    {
        var ft = _preset.FileType;
        var cat = Category(name);
        bool falcon = _arch == "falcon";
        if (cat == Cat.Output || (_tiedEmbedding && cat == Cat.TokenEmbd))
        {
            if (falcon || columns % TensorTypes.Get(type).BlockSize != 0) return GgmlType.Q8_0;
            return type != GgmlType.Q8_0 ? GgmlType.Q6_K : type;
        }
        if (cat == Cat.TokenEmbd) return type;
        if (IsAttnV(cat))
        {
            if (ft == FileType.MOSTLY_Q2_K) type = _gqa >= 4 ? GgmlType.Q4_K : GgmlType.Q3_K;
            else if (ft == FileType.MOSTLY_Q3_K_M) type = _attnV < 2 ? GgmlType.Q5_K : GgmlType.Q4_K;
            else if (ft == FileType.MOSTLY_Q3_K_L) type = GgmlType.Q5_K;
            else if (ft is FileType.MOSTLY_IQ4_NL or FileType.MOSTLY_IQ4_XS && _gqa >= 4) type = GgmlType.Q5_K;
            else if (ft is FileType.MOSTLY_Q4_K_M or FileType.MOSTLY_Q5_K_M && UseMoreBits(_attnV, _attnVCount)) type = GgmlType.Q6_K;
            else if (ft == FileType.MOSTLY_Q4_K_S && _attnV < 4) type = GgmlType.Q5_K;
            if (_is70B && type is GgmlType.Q3_K or GgmlType.Q4_K) type = GgmlType.Q5_K;
            _attnV++;
            return type;
        }
        if (cat == Cat.FfnDown)
        {
            int i = _ffnDown, n = _layers;
            if (ft == FileType.MOSTLY_Q2_K) type = GgmlType.Q3_K;
            else if (ft == FileType.MOSTLY_Q3_K_M)
                type = i < n / 16 ? GgmlType.Q5_K : !falcon || UseMoreBits(i, n) ? GgmlType.Q4_K : GgmlType.Q3_K;
            else if (ft == FileType.MOSTLY_Q3_K_L) type = falcon ? GgmlType.Q4_K : GgmlType.Q5_K;
            else if (ft == FileType.MOSTLY_Q4_K_M)
            {
                if (falcon) type = i < n / 16 ? GgmlType.Q6_K : UseMoreBits(i, n) ? GgmlType.Q5_K : GgmlType.Q4_K;
                else if (UseMoreBits(i, n)) type = GgmlType.Q6_K;
            }
            else if (i < n / 8 && ft is FileType.MOSTLY_IQ4_NL or FileType.MOSTLY_IQ4_XS) type = GgmlType.Q5_K;
            else if (ft == FileType.MOSTLY_Q5_K_M && UseMoreBits(i, n)) type = GgmlType.Q6_K;
            else if (ft == FileType.MOSTLY_Q4_K_S && !falcon && i < n / 8) type = GgmlType.Q5_K;
            _ffnDown++;
            return type;
        }
        if (cat == Cat.AttnOutput)
        {
            if (!falcon)
            {
                if (ft == FileType.MOSTLY_Q2_K) type = GgmlType.Q3_K;
                else if (ft == FileType.MOSTLY_Q3_K_M) type = GgmlType.Q4_K;
                else if (ft == FileType.MOSTLY_Q3_K_L) type = GgmlType.Q5_K;
            }
            else if (ft == FileType.MOSTLY_Q3_K_L) type = GgmlType.Q4_K;
        }
        return type;
    }

    /// <summary>llama.cpp's fallback chain for a row length the type's block does not divide: the 256-value
    /// types fall back to a 32-value type (IQ4_XS → IQ4_NL, Q2_K/Q3_K → Q4_0, Q4_K → Q5_0, Q5_K → Q5_1,
    /// Q6_K → Q8_0), and a row that fits no 32-value block to F16. llama.cpp stops with an error for the
    /// 32-value types themselves; we give those rows F16 too (and report them), so models with such rows
    /// (stories260K's 172-wide ffn_down) can still be written in every preset.</summary>
    private GgmlType Fallback(string name, long columns, GgmlType type)
    {
        if (columns % TensorTypes.Get(type).BlockSize == 0) return type;
        var fallback = type switch
        {
            GgmlType.IQ4_XS => GgmlType.IQ4_NL,
            GgmlType.Q2_K or GgmlType.Q3_K => GgmlType.Q4_0,
            GgmlType.Q4_K => GgmlType.Q5_0,
            GgmlType.Q5_K => GgmlType.Q5_1,
            GgmlType.Q6_K => GgmlType.Q8_0,
            _ => GgmlType.F16,
        };
        if (columns % TensorTypes.Get(fallback).BlockSize != 0) fallback = GgmlType.F16;
        Fallbacks.Add($"{name}: {columns} columns fit no {TensorTypes.Get(type).Name} block, using {TensorTypes.Get(fallback).Name}");
        return fallback;
    }
}
