namespace SdPipeline.Benchmarks;

/// <summary>Which FLOPs of a <see cref="FlopCount"/> a benchmark case performs.</summary>
public enum FlopPart
{
    /// <summary>None counted (elementwise work such as the optimizer step or image preprocessing).</summary>
    None,

    /// <summary>The forward pass.</summary>
    Forward,

    /// <summary>The backward pass.</summary>
    Backward,

    /// <summary>Forward and backward.</summary>
    ForwardBackward,
}
