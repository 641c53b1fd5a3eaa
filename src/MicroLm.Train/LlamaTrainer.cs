using MicroLm.Math;
using MicroLm.Models;

namespace MicroLm.Train;

/// <summary>LLaMA forward and backward over a batch of sequences: embedding, RMSNorm, rotary
/// attention with a causal mask, SwiGLU, tied classifier, mean cross-entropy. Every sum has one
/// fixed order (see <see cref="TrainKernels"/>; attention and norms sum sequentially), threads split
/// outputs only, and the math functions are DetMath's: the gradients are the same bits for any thread
/// count, SIMD width or CPU.</summary>
internal sealed class LlamaTrainer
{
    private readonly TrainConfig _c;
    private readonly ParamLayout _p;
    private readonly int _batch, _tokens, _threads;
    private readonly float[] _cos, _sin;           // [pos][pair]
    private readonly float _scale;

    // Activations kept for the backward pass.
    private sealed class LayerActs
    {
        public required float[] XIn, Rms1, Xn1, Q, K, V, Probs, Att, XMid, Rms2, Xn2, G, U, H;
    }
    private readonly LayerActs[] _acts;
    private readonly float[] _xOut, _rmsF, _xnF, _logits;
    // Scratch for the backward pass.
    private readonly float[] _dx, _dxn, _dq, _dk, _dv, _dAtt, _dG, _dU, _dH, _tmpT, _tmpD;

    public ParamLayout Layout => _p;
    /// <summary>The logits of the last forward pass without gradients (tokens × vocabulary).</summary>
    internal ReadOnlySpan<float> Logits => _logits;
    public TrainConfig Config => _c;

    public LlamaTrainer(TrainConfig c, int batch, int threads)
    {
        c.Validate();
        _c = c; _p = new ParamLayout(c); _batch = batch; _tokens = batch * c.SeqLen; _threads = System.Math.Max(1, threads);
        int T = _tokens, D = c.Dim, Hd = c.Hidden, S = c.SeqLen;
        _acts = new LayerActs[c.Layers];
        for (int l = 0; l < c.Layers; l++)
            _acts[l] = new LayerActs
            {
                XIn = new float[T * D], Rms1 = new float[T], Xn1 = new float[T * D], Q = new float[T * D], K = new float[T * D], V = new float[T * D],
                Probs = new float[batch * c.Heads * S * S], Att = new float[T * D], XMid = new float[T * D], Rms2 = new float[T],
                Xn2 = new float[T * D], G = new float[T * Hd], U = new float[T * Hd], H = new float[T * Hd],
            };
        _xOut = new float[T * D]; _rmsF = new float[T]; _xnF = new float[T * D]; _logits = new float[T * c.Vocab];
        _dx = new float[T * D]; _dxn = new float[T * D]; _dq = new float[T * D]; _dk = new float[T * D]; _dv = new float[T * D];
        _dAtt = new float[T * D]; _dG = new float[T * Hd]; _dU = new float[T * Hd]; _dH = new float[T * Hd];
        _tmpT = new float[System.Math.Max(T * System.Math.Max(c.Vocab, Hd), T * D)];
        _tmpD = new float[T * D];
        // The runtime's rotary angles, so that training and inference rotate identically.
        var rope = new Rope(c.HeadDim, c.RopeBase, neoxStyle: false);
        int half = c.HeadDim / 2;
        _cos = new float[S * half]; _sin = new float[S * half];
        for (int pos = 0; pos < S; pos++) rope.Angles(pos, _cos.AsSpan(pos * half, half), _sin.AsSpan(pos * half, half));
        _scale = 1f / MathF.Sqrt(c.HeadDim);
    }

    /// <summary>Weights at initialisation: norms 1, matrices uniform with standard deviation 0.02 (the
    /// residual projections scaled by 1/√(2·layers)), drawn in layout order from <paramref name="seed"/>.</summary>
    public float[] Initialize(ulong seed)
    {
        var w = new float[_p.Count];
        var rng = new SplitMix(seed);
        foreach (var e in _p.Entries)
        {
            var span = w.AsSpan(e.Offset, e.Size);
            if (!e.IsMatrix) { span.Fill(1f); continue; }
            float a = 0.02f * MathF.Sqrt(3f);
            if (e.Name.EndsWith("attn_output.weight", StringComparison.Ordinal) || e.Name.EndsWith("ffn_down.weight", StringComparison.Ordinal))
                a /= MathF.Sqrt(2f * _c.Layers);
            for (int i = 0; i < span.Length; i++) span[i] = a * rng.Symmetric();
        }
        return w;
    }

    /// <summary>Mean cross-entropy of predicting tokens[b, t+1] from tokens[b, ..t]; with <paramref name="grad"/>
    /// (zeroed here) also its gradient. <paramref name="wt"/> holds each matrix transposed (same offsets).</summary>
    public double Step(float[] w, float[] wt, int[] inputs, int[] targets, float[]? grad)
    {
        var c = _c;
        int T = _tokens, D = c.Dim, Hd = c.Hidden, V = c.Vocab;
        // ---- forward
        var x = _acts.Length > 0 ? _acts[0].XIn : _xOut;
        for (int t = 0; t < T; t++) Array.Copy(w, _p.Embedding + inputs[t] * D, x, t * D, D);
        for (int l = 0; l < c.Layers; l++)
        {
            var a = _acts[l];
            var o = _p.Layers[l];
            if (l > 0) Array.Copy(_xOut, a.XIn, T * D);
            RmsNorm(a.XIn, w, o.AttnNorm, a.Rms1, a.Xn1);
            TrainKernels.MatMul(a.Xn1, 0, T, D, wt, o.Wq, D, a.Q, 0, _threads);
            TrainKernels.MatMul(a.Xn1, 0, T, D, wt, o.Wk, D, a.K, 0, _threads);
            TrainKernels.MatMul(a.Xn1, 0, T, D, wt, o.Wv, D, a.V, 0, _threads);
            Rope(a.Q, inverse: false);
            Rope(a.K, inverse: false);
            AttentionForward(a);
            TrainKernels.MatMul(a.Att, 0, T, D, wt, o.Wo, D, _tmpT, 0, _threads);
            for (int i = 0; i < T * D; i++) a.XMid[i] = a.XIn[i] + _tmpT[i];                 // residual
            RmsNorm(a.XMid, w, o.FfnNorm, a.Rms2, a.Xn2);
            TrainKernels.MatMul(a.Xn2, 0, T, D, wt, o.Gate, Hd, a.G, 0, _threads);
            TrainKernels.MatMul(a.Xn2, 0, T, D, wt, o.Up, Hd, a.U, 0, _threads);
            for (int i = 0; i < T * Hd; i++) a.H[i] = DetMath.Silu(a.G[i]) * a.U[i];          // SwiGLU
            TrainKernels.MatMul(a.H, 0, T, Hd, wt, o.Down, D, _tmpT, 0, _threads);
            for (int i = 0; i < T * D; i++) _xOut[i] = a.XMid[i] + _tmpT[i];                  // residual
        }
        RmsNorm(_xOut, w, _p.OutputNorm, _rmsF, _xnF);
        TrainKernels.MatMul(_xnF, 0, T, D, wt, _p.Embedding, V, _logits, 0, _threads);    // tied classifier

        // ---- loss (and dlogits in place)
        var losses = new double[T];
        float inv = 1f / T;
        bool backward = grad != null;
        TrainKernels.For(T, _threads, t =>
        {
            var row = _logits.AsSpan(t * V, V);
            float m = float.NegativeInfinity;
            for (int v = 0; v < V; v++) m = MathF.Max(m, row[v]);
            double sum = 0;
            for (int v = 0; v < V; v++) sum += DetMath.ExpD((double)row[v] - m);
            losses[t] = DetMath.LogD(sum) + m - row[targets[t]];
            if (!backward) return;
            for (int v = 0; v < V; v++) row[v] = (float)(DetMath.ExpD((double)row[v] - m) / sum) * inv;
            row[targets[t]] -= inv;
        });
        double loss = 0;
        for (int t = 0; t < T; t++) loss += losses[t];
        loss /= T;
        if (grad == null) return loss;

        // ---- backward
        Array.Clear(grad);
        // classifier: dE += dlogitsᵀ · xnF ; dxnF = dlogits · E
        TrainKernels.Transpose(_logits, 0, T, V, _tmpT, 0);
        TrainKernels.MatMul(_tmpT, 0, V, T, _xnF, 0, D, grad, _p.Embedding, _threads);
        TrainKernels.MatMul(_logits, 0, T, V, w, _p.Embedding, D, _dxn, 0, _threads);
        Array.Clear(_dx);
        RmsNormBackward(_xOut, w, _p.OutputNorm, _rmsF, _dxn, grad, _dx);
        for (int l = c.Layers - 1; l >= 0; l--)
        {
            var a = _acts[l];
            var o = _p.Layers[l];
            // x = xMid + Down·h ; _dx is d(x)
            LinearBackward(a.H, Hd, _dx, D, w, o.Down, grad, _dH);
            TrainKernels.For(T * Hd, _threads, i =>
            {
                float g = a.G[i], sg = DetMath.Sigmoid(g);
                _dU[i] = _dH[i] * DetMath.Silu(g);
                _dG[i] = _dH[i] * a.U[i] * (sg * (1f + g * (1f - sg)));
            });
            LinearBackward(a.Xn2, D, _dG, Hd, w, o.Gate, grad, _dxn);
            LinearBackward(a.Xn2, D, _dU, Hd, w, o.Up, grad, _tmpD);
            for (int i = 0; i < T * D; i++) _dxn[i] += _tmpD[i];
            RmsNormBackward(a.XMid, w, o.FfnNorm, a.Rms2, _dxn, grad, _dx);             // _dx: d(xOut) + the norm's path = d(xMid)
            // xMid = xIn + Wo·att
            LinearBackward(a.Att, D, _dx, D, w, o.Wo, grad, _dAtt);
            AttentionBackward(a);
            Rope(_dq, inverse: true);
            Rope(_dk, inverse: true);
            LinearBackward(a.Xn1, D, _dq, D, w, o.Wq, grad, _dxn);
            LinearBackward(a.Xn1, D, _dk, D, w, o.Wk, grad, _tmpD);
            for (int i = 0; i < T * D; i++) _dxn[i] += _tmpD[i];
            LinearBackward(a.Xn1, D, _dv, D, w, o.Wv, grad, _tmpD);
            for (int i = 0; i < T * D; i++) _dxn[i] += _tmpD[i];
            RmsNormBackward(a.XIn, w, o.AttnNorm, a.Rms1, _dxn, grad, _dx);             // _dx: d(xMid) + the norm's path = d(xIn)
        }
        // embedding lookup: rows of dE gain d(x0), tokens in order
        for (int t = 0; t < T; t++)
        {
            int row = _p.Embedding + inputs[t] * D;
            for (int i = 0; i < D; i++) grad[row + i] += _dx[t * D + i];
        }
        return loss;
    }

    /// <summary>y = x·Wᵀ given dy: grad[W] += dyᵀ·x and dx = dy·W (dx overwritten, of T×inDim).</summary>
    private void LinearBackward(float[] x, int inDim, float[] dy, int outDim, float[] w, int offset, float[] grad, float[] dx)
    {
        int T = _tokens;
        TrainKernels.Transpose(dy, 0, T, outDim, _tmpT, 0);
        // grad rows (outputs) are written whole by the product, then added to the gradient array (zero until now for
        // this tensor, since every matrix is used once per step).
        TrainKernels.MatMul(_tmpT, 0, outDim, T, x, 0, inDim, grad, offset, _threads);
        TrainKernels.MatMul(dy, 0, T, outDim, w, offset, inDim, dx, 0, _threads);
    }

    /// <summary>out = x/rms(x) ⊙ g per token, keeping 1/rms for the backward pass. The mean square sums
    /// sequentially in float.</summary>
    private void RmsNorm(float[] x, float[] w, int gOff, float[] rinv, float[] output)
    {
        int D = _c.Dim;
        float eps = _c.Eps;
        TrainKernels.For(_tokens, _threads, t =>
        {
            int o = t * D;
            float ss = 0f;
            for (int i = 0; i < D; i++) ss += x[o + i] * x[o + i];
            float r = 1f / MathF.Sqrt(ss / D + eps);
            rinv[t] = r;
            for (int i = 0; i < D; i++) output[o + i] = w[gOff + i] * (r * x[o + i]);
        });
    }

    /// <summary>Given dy of the norm's output: grad[g] += Σ_t dy·x·r (tokens in order), and dx += r·g·dy − x·r³·(Σ dy·g·x)/D
    /// (added: dx already holds the residual path's gradient).</summary>
    private void RmsNormBackward(float[] x, float[] w, int gOff, float[] rinv, float[] dy, float[] grad, float[] dx)
    {
        int D = _c.Dim;
        TrainKernels.For(D, _threads, i =>
        {
            float acc = 0f;
            for (int t = 0; t < _tokens; t++) acc += dy[t * D + i] * (x[t * D + i] * rinv[t]);
            grad[gOff + i] += acc;
        });
        TrainKernels.For(_tokens, _threads, t =>
        {
            int o = t * D;
            float r = rinv[t], dot = 0f;
            for (int i = 0; i < D; i++) dot += dy[o + i] * w[gOff + i] * x[o + i];
            float k = r * r * r * dot / D;
            for (int i = 0; i < D; i++) dx[o + i] += r * (w[gOff + i] * dy[o + i]) - x[o + i] * k;
        });
    }

    /// <summary>Rotates adjacent pairs of every head by the position's angle (or back, for gradients).</summary>
    private void Rope(float[] v, bool inverse)
    {
        int D = _c.Dim, hd = _c.HeadDim, half = hd / 2, S = _c.SeqLen;
        TrainKernels.For(_tokens, _threads, t =>
        {
            int pos = t % S;
            for (int h = 0; h < _c.Heads; h++)
            {
                int b = t * D + h * hd;
                for (int k = 0; k < half; k++)
                {
                    float cos = _cos[pos * half + k], sin = inverse ? -_sin[pos * half + k] : _sin[pos * half + k];
                    float x0 = v[b + 2 * k], x1 = v[b + 2 * k + 1];
                    v[b + 2 * k] = x0 * cos - x1 * sin;
                    v[b + 2 * k + 1] = x0 * sin + x1 * cos;
                }
            }
        });
    }

    private void AttentionForward(LayerActs a)
    {
        int S = _c.SeqLen, D = _c.Dim, hd = _c.HeadDim, H = _c.Heads;
        TrainKernels.For(_batch * H, _threads, bh =>
        {
            int b = bh / H, h = bh % H;
            var probs = a.Probs.AsSpan(bh * S * S, S * S);
            for (int i = 0; i < S; i++)
            {
                int qi = (b * S + i) * D + h * hd;
                var p = probs.Slice(i * S, S);
                float m = float.NegativeInfinity;
                for (int j = 0; j <= i; j++)
                {
                    int kj = (b * S + j) * D + h * hd;
                    float s = 0f;
                    for (int d = 0; d < hd; d++) s += a.Q[qi + d] * a.K[kj + d];
                    p[j] = s * _scale;
                    m = MathF.Max(m, p[j]);
                }
                float sum = 0f;
                for (int j = 0; j <= i; j++) { p[j] = DetMath.Exp(p[j] - m); sum += p[j]; }
                for (int j = 0; j <= i; j++) p[j] /= sum;
                for (int j = i + 1; j < S; j++) p[j] = 0f;
                for (int d = 0; d < hd; d++)
                {
                    float acc = 0f;
                    for (int j = 0; j <= i; j++) acc += p[j] * a.V[(b * S + j) * D + h * hd + d];
                    a.Att[qi + d] = acc;
                }
            }
        });
    }

    /// <summary>From _dAtt: _dq, _dk, _dv (before the inverse rotation). Each (sequence, head) is one unit; within it
    /// the key/value gradients gain the queries' terms in query order.</summary>
    private void AttentionBackward(LayerActs a)
    {
        int S = _c.SeqLen, D = _c.Dim, hd = _c.HeadDim, H = _c.Heads;
        TrainKernels.For(_batch * H, _threads, bh =>
        {
            int b = bh / H, h = bh % H;
            var probs = a.Probs.AsSpan(bh * S * S, S * S);
            Span<float> dp = stackalloc float[S];
            for (int j = 0; j < S; j++)
            {
                int r = (b * S + j) * D + h * hd;
                for (int d = 0; d < hd; d++) { _dk[r + d] = 0f; _dv[r + d] = 0f; }
            }
            for (int i = 0; i < S; i++)
            {
                int qi = (b * S + i) * D + h * hd;
                var p = probs.Slice(i * S, S);
                float dot = 0f;
                for (int j = 0; j <= i; j++)
                {
                    int vj = (b * S + j) * D + h * hd;
                    float s = 0f;
                    for (int d = 0; d < hd; d++) s += _dAtt[qi + d] * a.V[vj + d];
                    dp[j] = s;
                    dot += p[j] * s;
                    for (int d = 0; d < hd; d++) _dv[vj + d] += p[j] * _dAtt[qi + d];
                }
                for (int d = 0; d < hd; d++) _dq[qi + d] = 0f;
                for (int j = 0; j <= i; j++)
                {
                    int kj = (b * S + j) * D + h * hd;
                    float ds = p[j] * (dp[j] - dot) * _scale;
                    for (int d = 0; d < hd; d++)
                    {
                        _dq[qi + d] += ds * a.K[kj + d];
                        _dk[kj + d] += ds * a.Q[qi + d];
                    }
                }
            }
        });
    }
}
