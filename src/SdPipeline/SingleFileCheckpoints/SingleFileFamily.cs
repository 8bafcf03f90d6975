using SdPipeline.Weights;

namespace SdPipeline.SingleFileCheckpoints;

/// <summary>Which Stable Diffusion a single-file checkpoint is, told apart by its text encoder.</summary>
public enum SingleFileFamily
{
    /// <summary>SD 1.x: transformers' CLIP names under <c>cond_stage_model.transformer.</c>.</summary>
    StableDiffusion1,

    /// <summary>SD 2.x: OpenCLIP names under <c>cond_stage_model.model.</c> (fused q/k/v).</summary>
    StableDiffusion2,
}
