namespace MicroLm;

/// <summary>A model or input that the runtime cannot use: a missing tensor, a wrong shape, an unknown
/// architecture, a prompt longer than the context, a NaN in the logits. The message says what and where.</summary>
public class MicroLmException(string message) : Exception(message);
