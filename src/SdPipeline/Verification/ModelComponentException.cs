namespace SdPipeline.Verification;

/// <summary>A model component a check needs is absent from the model folder, or failed to load.</summary>
internal sealed class ModelComponentException(string message) : Exception(message);
