using SdPipeline.Weights;

namespace SdPipeline.SingleFileCheckpoints;

/// <summary>Which Stable Diffusion a single-file checkpoint is, told apart by its text encoder.</summary>
public enum SingleFileFamily
{
    /// <summary>SD 1.x: transformers' CLIP names under <c>cond_stage_model.transformer.</c>.</summary>
    StableDiffusion1,

    /// <summary>SD 2.x: OpenCLIP names under <c>cond_stage_model.model.</c> (fused q/k/v).</summary>
    StableDiffusion2,

    /// <summary>
    /// SDXL (SGM's layout): CLIP ViT-L's transformers names under <c>conditioner.embedders.0.transformer.</c>, OpenCLIP
    /// ViT-bigG's names under <c>conditioner.embedders.1.model.</c> (fused q/k/v, <c>text_projection</c> as OpenCLIP's
    /// [hidden, projection] matrix).
    /// </summary>
    StableDiffusionXL,
}
