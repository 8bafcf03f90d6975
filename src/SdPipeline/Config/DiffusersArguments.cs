namespace SdPipeline.Config;

/// <summary>
/// The command-line names of diffusers' <c>train_text_to_image.py</c> / <c>train_text_to_image_lora.py</c> and their SDXL
/// versions (<c>train_text_to_image_sdxl.py</c> / <c>train_text_to_image_lora_sdxl.py</c>), which people arriving from those
/// scripts type out of habit, and those of kohya's sd-scripts (<c>train_network.py</c>, <c>sdxl_train_network.py</c>): each maps
/// to the key that does the same here, or to why there is none. Consulted when a key is unknown, before the nearest-spelling
/// guess.
/// </summary>
public static class DiffusersArguments
{
    private const string TimestepBias = "not supported: training timesteps are drawn uniformly, as with the SDXL script's default --timestep_bias_strategy none";

    /// <summary>argparse name → a config key (<c>section.key</c>) or, for no key, an explanation starting "not supported" / "not needed".</summary>
    public static IReadOnlyDictionary<string, string> Map { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["pretrained_model_name_or_path"] = "model.base",
        ["revision"] = "model.base",
        ["variant"] = "model.variant",
        ["dataset_name"] = "download.source",
        ["train_data_dir"] = "download.source",
        ["max_train_samples"] = "download.count",
        ["validation_prompts"] = "train.validation_prompts",
        ["validation_prompt"] = "train.validation_prompts",
        ["num_validation_images"] = "sample.seeds",
        ["validation_epochs"] = "train.validation_steps",
        ["resolution"] = "latents.resolution",
        ["center_crop"] = "latents.center_crop",
        ["random_flip"] = "latents.random_flip",
        ["image_interpolation_mode"] = "latents.interpolation",
        ["train_batch_size"] = "train.train_batch_size",
        ["num_train_epochs"] = "train.num_train_epochs",
        ["max_train_steps"] = "train.max_train_steps",
        ["gradient_accumulation_steps"] = "train.gradient_accumulation_steps",
        ["gradient_checkpointing"] = "train.gradient_checkpointing",
        ["learning_rate"] = "train.learning_rate",
        ["scale_lr"] = "train.scale_lr",
        ["lr_scheduler"] = "train.lr_scheduler",
        ["lr_warmup_steps"] = "train.lr_warmup_steps",
        ["snr_gamma"] = "train.snr_gamma",
        ["use_ema"] = "train.use_ema",
        ["offload_ema"] = "train.ema_on_cpu",
        ["adam_beta1"] = "train.adam_beta1",
        ["adam_beta2"] = "train.adam_beta2",
        ["adam_weight_decay"] = "train.adam_weight_decay",
        ["adam_epsilon"] = "train.adam_epsilon",
        ["max_grad_norm"] = "train.max_grad_norm",
        ["prediction_type"] = "train.prediction_type",
        ["mixed_precision"] = "train.mixed_precision",
        ["checkpointing_steps"] = "train.checkpointing_steps",
        ["checkpoints_total_limit"] = "train.checkpoints_total_limit",
        ["noise_offset"] = "train.noise_offset",
        ["input_perturbation"] = "train.input_perturbation",
        ["seed"] = "train.seed",
        ["rank"] = "train.lora_rank",
        ["train_text_encoder"] = "train.train_text_encoder",
        ["proportion_empty_prompts"] = "train.caption_dropout",
        ["image_column"] = "not supported as a key: set image_column in the dataset's datasets.json entry (parquet sources)",
        ["caption_column"] = "not supported as a key: set caption_column in the dataset's datasets.json entry",
        ["use_8bit_adam"] = "not supported: bitsandbytes' 8-bit AdamW is a CUDA kernel library for Python; to save memory use train.method=lora, train.mixed_precision=bf16 or train.ema_on_cpu=true (the pre-flight check says which helps)",
        ["enable_xformers_memory_efficient_attention"] = "not needed: attention runs through libtorch's scaled_dot_product_attention, which picks a memory-efficient kernel itself",
        ["allow_tf32"] = "not supported: TF32 matmuls are not switchable from TorchSharp; bf16 or fp16 mixed precision (train.mixed_precision) is the faster GPU path",
        ["resume_from_checkpoint"] = "not needed: running the train stage again continues from its newest checkpoint",
        ["output_dir"] = "not a config key: pass --artifacts DIR (each stage writes artifacts/<stage>/<fingerprint>/; the report's deliverables/ holds the result)",
        ["cache_dir"] = "not a config key: set HF_HOME or HF_HUB_CACHE (the standard Hugging Face cache is used)",
        ["push_to_hub"] = "not supported: upload deliverables/model.safetensors or deliverables/model/ yourself",
        ["hub_token"] = "not supported: HF_TOKEN is read for downloads; nothing is uploaded",
        ["hub_model_id"] = "not supported: nothing is uploaded",
        ["report_to"] = "not supported: training signals go to metrics.jsonl and the report",
        ["logging_dir"] = "not supported: training signals go to metrics.jsonl in the train artifact",
        ["local_rank"] = "not supported: one process trains on one device",
        ["dataloader_num_workers"] = "not needed: training reads the precomputed latent cache",
        ["non_ema_revision"] = "not supported: the EMA starts from the base model's weights",
        ["dataset_config_name"] = "not supported: give the repository (download.source=hf:org/name) and, in a registry entry, include patterns",
        ["tracker_project_name"] = "not supported: there is no experiment tracker",
        ["dream_training"] = "not supported: DREAM is not implemented",
        // The SDXL scripts' own arguments. Their README's recipe swaps in madebyollin/sdxl-vae-fp16-fix because SDXL's VAE
        // overflows in float16; here the VAE always runs in float32.
        ["pretrained_vae_model_name_or_path"] = "not supported: the VAE is model.base's own vae/, and it encodes the latents and decodes samples in float32, " +
            "so the float16 overflow the SDXL recipe's fp16-fix VAE avoids does not happen; for another VAE, point model.base at a copy of the model folder with that vae/",
        ["timestep_bias_strategy"] = TimestepBias,
        ["timestep_bias_multiplier"] = TimestepBias,
        ["timestep_bias_begin"] = TimestepBias,
        ["timestep_bias_end"] = TimestepBias,
        ["timestep_bias_portion"] = TimestepBias,
    };

    /// <summary>kohya's sd-scripts argument name → a config key or, for no key, an explanation (as in <see cref="Map"/>).</summary>
    public static IReadOnlyDictionary<string, string> Kohya { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["network_dim"] = "train.lora_rank",
        ["network_alpha"] = "train.lora_alpha",
        ["caption_dropout_rate"] = "train.caption_dropout",
        ["shuffle_caption"] = "train.shuffle_tags",
        ["keep_tokens"] = "train.keep_tags",
        ["enable_bucket"] = "latents.bucketing",
        ["min_bucket_reso"] = "latents.bucket_min_side",
        ["max_bucket_reso"] = "latents.bucket_max_side",
        ["min_snr_gamma"] = "train.snr_gamma",
        ["network_train_unet_only"] = "not needed: a LoRA run adapts the UNet alone unless train.train_text_encoder=true",
        ["cache_latents"] = "not needed: the latents stage always caches the latents",
        ["cache_text_encoder_outputs"] = "not needed: the latents stage caches the text encoders' outputs (both of SDXL's, and the pooled embedding)",
    };

    /// <summary>What to tell someone who typed <paramref name="path"/> (with or without a section or leading dashes), or null when it is no diffusers or kohya argument.</summary>
    public static string? Explain(string path)
    {
        string name = path.TrimStart('-');
        name = name[(name.LastIndexOf('.') + 1)..].Replace('-', '_');
        string whose;
        if (Map.TryGetValue(name, out var target)) whose = "diffusers'";
        else if (Kohya.TryGetValue(name, out target)) whose = "kohya's";
        else return null;
        return target.Contains(' ') ? $"{whose} --{name} is {target}" : $"did you mean '{target}'? ({whose} --{name})";
    }
}
