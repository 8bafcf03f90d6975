namespace SdPipeline.Verification;

/// <summary>
/// A parity fixture cannot be interpreted: no sidecar, a tensor the check needs is missing, a shape or dtype differs
/// from what the sidecar or the check expects. The verifier turns it into a failed "cannot interpret" row.
/// </summary>
public sealed class ParityFixtureException(string message) : Exception(message);
