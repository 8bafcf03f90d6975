namespace SdPipeline.Verification;

/// <summary>How a <see cref="ParityTolerance"/> bounds the difference between our tensor and the reference.</summary>
public enum ToleranceKind
{
    /// <summary>Every element: |ours − reference| ≤ value (value 0: exact). Optionally a small share of outliers is allowed.</summary>
    Absolute,

    /// <summary>Every element: |ours − reference| ≤ value · max(1, abs max of the reference): "atol, or rtol of the abs max".</summary>
    AbsoluteOrRelativeToMax,

    /// <summary>max |ours − reference| ≤ value · abs max of the reference.</summary>
    RelativeToMax,

    /// <summary>Every element: |ours − reference| ≤ value · |reference| (NumPy's rtol with atol 0).</summary>
    RelativePerElement,
}
