namespace MicroLm.Models;

/// <summary>A state-space layer's memory (Mamba2 in Falcon-H1): the last (kernel − 1) inputs of its causal
/// depthwise convolution per channel, and the SSM state per head (headDim × stateSize). Constant size:
/// it does not grow with the sequence.</summary>
internal sealed class RecurrentState : LayerMemory
{
    /// <summary>[channel][kernel − 1]: the convolution's window of earlier inputs, oldest first.</summary>
    public float[] Conv { get; }
    /// <summary>[head][headDim][stateSize].</summary>
    public float[] Ssm { get; }
    public int Channels { get; }
    public int ConvWindow { get; }

    public RecurrentState(int layer, int channels, int convKernel, int heads, int headDim, int stateSize) : base(layer)
    {
        Channels = channels;
        ConvWindow = System.Math.Max(0, convKernel - 1);
        Conv = new float[checked((long)channels * ConvWindow)];
        Ssm = new float[checked((long)heads * headDim * stateSize)];
    }

    public override string Kind => "recurrent";
    public override long Bytes => ((long)Conv.Length + Ssm.Length) * sizeof(float);

    public override void Reset()
    {
        Array.Clear(Conv);
        Array.Clear(Ssm);
    }

    /// <summary>Bytes of a state of this shape (for the envelope, without allocating).</summary>
    public static long BytesFor(int channels, int convKernel, int heads, int headDim, int stateSize) =>
        ((long)channels * System.Math.Max(0, convKernel - 1) + (long)heads * headDim * stateSize) * sizeof(float);
}
