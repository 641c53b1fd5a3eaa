using MicroLm.Tensors;

namespace MicroLm.Gguf;

/// <summary>One entry of the tensor table. <see cref="Shape"/> is in ggml order: Shape[0] (ne0) varies fastest.</summary>
internal sealed class GgufTensorInfo
{
    public required string Name { get; init; }
    public required TensorTypeInfo Type { get; init; }
    public required long[] Shape { get; init; }
    /// <summary>Offset relative to the start of the data section.</summary>
    public required long Offset { get; init; }
    public required long ByteSize { get; init; }
    /// <summary>Byte offset in the file where this tensor's info entry starts (for error messages).</summary>
    public long InfoOffset { get; init; }

    public long ElementCount
    {
        get { long n = 1; foreach (var d in Shape) n *= d; return n; }
    }

    /// <summary>Row length (ne0) and number of rows (product of the other dimensions).</summary>
    public long Columns => Shape.Length > 0 ? Shape[0] : 1;
    public long Rows => Shape.Length > 0 ? ElementCount / System.Math.Max(1, Shape[0]) : 1;

    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}
