using Newtonsoft.Json;

namespace SdPipeline.Config;

// One class per config section; JSON names are snake_case (SnakeCaseNamingStrategy), defaults are the
// property initialisers, and every key carries a [ConfigKey] description. The schema is read from these
// classes by reflection (ConfigSchema), so a key exists in exactly one place.

/// <summary>Where and how stages run.</summary>
public sealed class RuntimeSection
{
    [ConfigKey("Device for tensor work: cpu, cuda, or auto (cuda when available).", AllowedValues = ["cpu", "cuda", "auto"])]
    public string Device { get; init; } = "cpu";

    [ConfigKey("Threads for CPU tensor work; 0 uses every core.", Min = 0, Max = 4096)]
    public int Threads { get; init; }

    [ConfigKey("Memory the training pre-flight may plan for, in GiB; 0 uses what the device reports available (CPU: MemAvailable).", Min = 0)]
    public double MemoryLimitGb { get; init; }

    [ConfigKey("oneDNN for CPU convolutions. auto: on, unless the numerics self-check before training finds a wrong result with it on this CPU, then off for the run, and off for training a UNet of 320+ channels in float32 (faster there); on: keep it (a wrong result stops the run); off: libtorch's own convolutions.", AllowedValues = ["auto", "on", "off"])]
    public string Onednn { get; init; } = "auto";

    [ConfigKey("The project's own CPU kernels: in inference Winograd 3x3 convolutions, GroupNorm, attention, linear layers and Winograd products by oneDNN's brgemm on AMD CPUs, and libtorch's own path for wide convolutions at low resolutions; in training on AMD CPUs, float32 attention over long sequences and 3x3 convolutions (oneDNN off: by Winograd with both gradients from 16x16, below that without libtorch's zeroing of the weight gradient) with their gradients; in training and inference on AMD CPUs, libtorch's float32 GEMM calls by oneDNN's brgemm instead of MKL. Chosen by rules measured on an Intel Xeon and an AMD EPYC Zen 4. auto: where this CPU vendor's rules choose them; amd, intel: that vendor's rules on any CPU (to time both on yours with sdpipe bench); off: every layer as libtorch runs it (sdpipe bench kernels shows which is faster on your CPU). Results agree to float32 rounding.", AllowedValues = ["auto", "off", "amd", "intel"])]
    public string Kernels { get; init; } = "auto";
}

/// <summary>The base model (the `model` stage).</summary>
public sealed class ModelSection
{
    [ConfigKey("Base model: builtin:tiny, hf:org/name[@revision], a local diffusers folder, or an original-layout SD 1.x/2.x or SDXL single-file .safetensors (the AUTOMATIC1111/ComfyUI kind; a .yaml beside it is read for v-prediction).")]
    public string Base { get; init; } = "builtin:tiny";

    [ConfigKey("Precision variant of the weights to fetch and load (for example fp16: diffusion_pytorch_model.fp16.safetensors); empty for the full-precision files. Weights are used in float32 either way.")]
    public string Variant { get; init; } = "";

    [ConfigKey("For a single-file model.base: a diffusers folder of the same architecture whose tokenizer/ (which no single file carries) and, where present, unet/vae/text_encoder/scheduler configs are used, as diffusers' from_single_file(config=...); what it lacks is inferred from the tensors (SD 1.x/2.x; an SDXL file needs the folder's unet, vae, text_encoder, text_encoder_2 configs and tokenizer_2/).")]
    public string SingleFileConfig { get; init; } = "";

    [ConfigKey("Seed of builtin:tiny's initial weights.", Min = 0)]
    public int BuiltinSeed { get; init; }

    [ConfigKey("Steps training builtin:tiny's autoencoder on generated shapes (batches of 16); 0 leaves it random.", Min = 0)]
    public int BuiltinAutoencoderSteps { get; init; } = 400;

    [ConfigKey("Text-encoder layers to skip at the end (diffusers' clip_skip: 1 uses the penultimate layer); used for cached embeddings, training and sampling alike, the negative prompt's included (as AUTOMATIC1111 and kohya use it, and as caption dropout trains the empty prompt; diffusers' pipelines encode the negative prompt from the last layer).", Min = 0)]
    public int ClipSkip { get; init; }

    [ConfigKey("Text clean-up of the CLIP tokenizer for captions and prompts: transformers (the CLIPTokenizer diffusers uses, as a plain install runs it: no ftfy, HTML entities kept, control characters dropped, CJK ideographs split) or openai (OpenAI CLIP's simple_tokenizer without ftfy: HTML entities unescaped).", AllowedValues = ["transformers", "openai"])]
    public string TokenizerCleaning { get; init; } = "transformers";
}

/// <summary>Image preprocessing and the latent cache (the `latents` stage).</summary>
public sealed class LatentsSection
{
    [ConfigKey("Training resolution in pixels: the short side is resized to it (or buckets of about this many pixels squared).", Min = 8, Max = 8192, MultipleOf = 8)]
    public int Resolution { get; init; } = 512;

    [ConfigKey("Resampling filter of the resize, as diffusers' --image_interpolation_mode.", AllowedValues = ["lanczos", "bilinear", "bicubic"])]
    public string Interpolation { get; init; } = "lanczos";

    [ConfigKey("Crop the centre (true) or a random window (false, diffusers' default) of the resized image.")]
    public bool CenterCrop { get; init; }

    [ConfigKey("Flip images left-right at random (diffusers' --random_flip); cached as separate variants.")]
    public bool RandomFlip { get; init; }

    [ConfigKey("Augmented variants cached per image (random crops and flips); training draws one per epoch. At least 2 when random_flip is on, where every second variant is flipped (an even count flips half, as diffusers flips with p = 0.5; an odd count n flips (n − 1) / 2); 1 when neither random crops nor flips apply.", Min = 1)]
    public int Variants { get; init; } = 1;

    [ConfigKey("Seed of the random crops and flips.", Min = 0)]
    public int Seed { get; init; }

    [ConfigKey("Aspect-ratio bucketing: train each image whole at the bucket nearest its aspect ratio instead of cropping it square.")]
    public bool Bucketing { get; init; }

    [ConfigKey("Smallest bucket side in pixels; 0 means resolution/2.", Min = 0, Max = 8192)]
    public int BucketMinSide { get; init; }

    [ConfigKey("Largest bucket side in pixels; 0 means resolution×2.", Min = 0, Max = 8192)]
    public int BucketMaxSide { get; init; }

    [ConfigKey("Images encoded per VAE batch (memory, not results: lower it if the device runs out of memory).", Min = 1)]
    public int BatchSize { get; init; } = 8;

    [ConfigKey("Rows per shard file; an interrupted run resumes from the finished shards.", Min = 1)]
    public int ShardSize { get; init; } = 256;

    [ConfigKey("Storage dtype of the text-encoder hidden states.", AllowedValues = ["float16", "bfloat16", "float32"])]
    public string EmbeddingDtype { get; init; } = "float16";

    [ConfigKey("Storage dtype of the VAE posterior (mean and std).", AllowedValues = ["float32", "float16", "bfloat16"])]
    public string PosteriorDtype { get; init; } = "float32";

    [ConfigKey("Fail the stage when more than this share of images cannot be used.", Min = 0, Max = 1)]
    public double MaxSkippedFraction { get; init; } = 0.05;
}

/// <summary>The dataset (the `download` stage).</summary>
public sealed class DownloadSection
{
    [ConfigKey("Name of the dataset in the registry (download.registry); ignored when download.source is set.")]
    public string Dataset { get; init; } = "shapes";

    [ConfigKey("A dataset without a registry entry: a local folder or archive (relative to the working directory), an https:// URL of an archive, parquet or image, or hf:org/name[@revision] (a Hub dataset repository). Captions: metadata.jsonl, then metadata.csv, then image.txt / image.caption beside image.png, in subfolders too.")]
    public string Source { get; init; } = "";

    [ConfigKey("An image without a caption: skip it (listed in skipped.jsonl), error (stop and name it), or empty (train it with the empty caption).", AllowedValues = ["skip", "error", "empty"])]
    public string MissingCaption { get; init; } = "skip";

    [ConfigKey("Path of the dataset registry JSON file. Only the chosen entry's content is part of the fingerprint.")]
    public string Registry { get; init; } = "datasets.json";

    [ConfigKey("Items to take: the first N of the source (for synthetic sources, N to generate); 0 takes the registry's full size.", Min = 0)]
    public int Count { get; init; }

    [ConfigKey("Images whose shorter side is below this many pixels are skipped.", Min = 1)]
    public int MinSide { get; init; } = 32;

    // The ceiling is 16384² pixels: decoding holds 4 bytes a pixel in one .NET array, and past 2^29 pixels that
    // size no longer fits an int.
    [ConfigKey("Images with more pixels than this are skipped before decoding (a decompression-bomb guard).", Min = 1, Max = 268_435_456)]
    public long MaxPixels { get; init; } = 64L * 1024 * 1024;

    [ConfigKey("Share of items put in the held-out split, chosen by a hash of the item id, for datasets without their own split.", Min = 0, Max = 1, MaxExclusive = true)]
    public double HeldoutFraction { get; init; } = 0.05;

    [ConfigKey("Attempts per file download that receive nothing new before giving up (with exponential backoff between them); an attempt that made the file longer does not count.", Min = 1, Max = 100)]
    public int Retries { get; init; } = 5;

    [ConfigKey("Seconds without progress (waiting for a server's answer, or for the next bytes of a file) before a download attempt or Hub request is abandoned; downloads then resume.", Min = 1, Max = 86400)]
    public int TimeoutSeconds { get; init; } = 60;

    [ConfigKey("Seconds to open a connection to a server (the Hub, a dataset host) before the attempt fails.", Min = 1, Max = 3600)]
    public int ConnectTimeoutSeconds { get; init; } = 30;

    [ConfigKey("Longest wait, in seconds, before retrying a server that answers 429 or 503 with Retry-After; a longer Retry-After is cut to this (the log says so).", Min = 0, Max = 86400)]
    public int MaxRetryWaitSeconds { get; init; } = 300;
}

/// <summary>The fine-tuning loop (the `train` stage). Defaults follow diffusers' train_text_to_image.py.</summary>
public sealed class TrainSection
{
    [ConfigKey("Probability of training a caption as the empty prompt (diffusers' --proportion_empty_prompts), which trains the unconditional prediction classifier-free guidance uses; the empty prompt's embedding is computed once, so the latent cache stays in use.", Min = 0, Max = 1)]
    public double CaptionDropout { get; init; }

    [ConfigKey("Shuffle the comma-separated tags of each caption every step (kohya's --shuffle_caption), after the first train.keep_tags; shuffled captions are encoded each step by the text encoder instead of read from the cache.")]
    public bool ShuffleTags { get; init; }

    [ConfigKey("Leading tags that train.shuffle_tags keeps in place (kohya's --keep_tokens), such as a trigger word.", Min = 0)]
    public int KeepTags { get; init; }

    [ConfigKey("Precision of the single-file model.safetensors a full fine-tune also writes (the file AUTOMATIC1111 and ComfyUI load): fp16 halves its size, fp32 keeps the trained weights exactly.", AllowedValues = ["fp16", "fp32"])]
    public string ExportDtype { get; init; } = "fp16";

    [ConfigKey("Base learning rate (AdamW).", Min = 0, MinExclusive = true, Max = 1)]
    public double LearningRate { get; init; } = 1e-4;

    [ConfigKey("Multiply the learning rate by gradient_accumulation_steps × train_batch_size, as diffusers' --scale_lr.")]
    public bool ScaleLr { get; init; }

    [ConfigKey("Learning-rate schedule.", AllowedValues = ["constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"])]
    public string LrScheduler { get; init; } = "constant";

    [ConfigKey("Optimizer steps of linear warm-up (ignored by constant).", Min = 0)]
    public int LrWarmupSteps { get; init; } = 500;

    [ConfigKey("cosine_with_restarts: the number of hard restarts (diffusers' --lr_num_cycles; cosine is always one decay to zero, as diffusers' get_scheduler makes it).", Min = 0)]
    public double LrNumCycles { get; init; } = 1;

    [ConfigKey("polynomial: decay power (the rate ends at 1e-7, diffusers' lr_end).", Min = 0)]
    public double LrPower { get; init; } = 1.0;

    [ConfigKey("AdamW β1.", Min = 0, Max = 1, MaxExclusive = true)]
    public double AdamBeta1 { get; init; } = 0.9;

    [ConfigKey("AdamW β2.", Min = 0, Max = 1, MaxExclusive = true)]
    public double AdamBeta2 { get; init; } = 0.999;

    [ConfigKey("AdamW decoupled weight decay.", Min = 0)]
    public double AdamWeightDecay { get; init; } = 1e-2;

    [ConfigKey("AdamW ε.", Min = 0, MinExclusive = true)]
    public double AdamEpsilon { get; init; } = 1e-8;

    [ConfigKey("Clip the global gradient norm to this; 0 disables clipping.", Min = 0)]
    public double MaxGradNorm { get; init; } = 1.0;

    [ConfigKey("Images per micro-batch.", Min = 1)]
    public int TrainBatchSize { get; init; } = 16;

    [ConfigKey("Micro-batches per optimizer step.", Min = 1)]
    public int GradientAccumulationSteps { get; init; } = 1;

    [ConfigKey("Step AdamW on each parameter inside backward, as soon as its gradient exists, so the model's gradients are never held at once (kohya's fused_backward_pass): the same weights bit for bit, less memory by about the trained weights' size. Needs train.max_grad_norm=0, train.gradient_accumulation_steps=1 and no fp16.")]
    public bool FusedBackwardPass { get; init; }

    [ConfigKey("Optimizer steps to train; 0 means num_train_epochs passes over the data.", Min = 0)]
    public int MaxTrainSteps { get; init; }

    [ConfigKey("Passes over the training images when max_train_steps is 0.", Min = 1)]
    public int NumTrainEpochs { get; init; } = 100;

    [ConfigKey("Seed of the data order, noise and timesteps.", Min = 0)]
    public int Seed { get; init; }

    [ConfigKey("Noise offset (Guttenberg): adds offset × N(0,1) per channel to the noise; 0.1 is common, 0 disables.", Min = 0)]
    public double NoiseOffset { get; init; }

    [ConfigKey("Input perturbation (Ning et al.): noise the input with noise + p × N(0,1); 0.1 is recommended, 0 disables.", Min = 0)]
    public double InputPerturbation { get; init; }

    [ConfigKey("Prediction target: epsilon or v_prediction; empty uses the scheduler config's prediction_type.", AllowedValues = ["", "epsilon", "v_prediction"])]
    public string PredictionType { get; init; } = "";

    [ConfigKey("Min-SNR-γ loss weighting (Hang et al. 2023); 5 is recommended, 0 disables.", Min = 0)]
    public double SnrGamma { get; init; }

    [ConfigKey("Compute precision of matmuls and convolutions; master weights stay float32 (fp16 adds dynamic loss scaling).", AllowedValues = ["no", "fp16", "bf16"])]
    public string MixedPrecision { get; init; } = "no";

    [ConfigKey("Recompute the UNet's resnet and transformer block activations in the backward pass instead of storing them.")]
    public bool GradientCheckpointing { get; init; }

    [ConfigKey("Keep an exponential moving average of the weights and export it as the result.")]
    public bool UseEma { get; init; }

    [ConfigKey("EMA maximum decay.", Min = 0, Max = 1)]
    public double EmaDecay { get; init; } = 0.9999;

    [ConfigKey("EMA minimum decay.", Min = 0, Max = 1)]
    public double EmaMinDecay { get; init; }

    [ConfigKey("Optimizer steps before the EMA starts averaging.", Min = 0)]
    public int EmaUpdateAfterStep { get; init; }

    [ConfigKey("EMA warm-up: decay 1 - (1 + step/inv_gamma)^-power instead of (1 + step)/(10 + step).")]
    public bool EmaUseWarmup { get; init; }

    [ConfigKey("EMA warm-up inverse gamma.", Min = 0, MinExclusive = true)]
    public double EmaInvGamma { get; init; } = 1.0;

    [ConfigKey("EMA warm-up power.", Min = 0, MinExclusive = true)]
    public double EmaPower { get; init; } = 2.0 / 3.0;

    [ConfigKey("Keep the EMA weights in CPU memory (saves device memory; costs a copy per step).")]
    public bool EmaOnCpu { get; init; }

    [ConfigKey("Save a checkpoint (weights and training state) every N optimizer steps; 0 saves only at the end.", Min = 0)]
    public int CheckpointingSteps { get; init; } = 500;

    [ConfigKey("Checkpoints to keep (the newest); 0 keeps all.", Min = 0)]
    public int CheckpointsTotalLimit { get; init; } = 3;

    [ConfigKey("Measure the held-out loss (and the caption-shuffle gap), and sample train.validation_prompts, every N optimizer steps; 0 only at the end.", Min = 0)]
    public int ValidationSteps { get; init; } = 100;

    [ConfigKey("Prompts sampled from the weights being trained before the first step, every train.validation_steps and at the end (diffusers' --validation_prompts), into validation/ of the train artifact and TensorBoard, and shown in the report as a step × prompt grid; seeded with train.seed, so the rows are comparable. Empty samples none.")]
    public string[] ValidationPrompts { get; init; } = [];

    [ConfigKey("Sampler steps of each validation image, with the model's own scheduler (diffusers' log_validation uses 20).", Min = 1, Max = 1000)]
    public int ValidationInferenceSteps { get; init; } = 20;

    [ConfigKey("Classifier-free guidance scale of the validation images; 1 or less disables guidance.", Min = 0)]
    public double ValidationGuidanceScale { get; init; } = 7.5;

    [ConfigKey("Held-out images used for the held-out loss (the first N of the held-out split).", Min = 0)]
    public int HeldoutMaxItems { get; init; } = 64;

    [ConfigKey("Train the text encoder too (its embeddings are then computed each step instead of read from the cache); with method lora, LoRA adapters on its attention projections.")]
    public bool TrainTextEncoder { get; init; }

    [ConfigKey("full fine-tunes every weight; lora trains low-rank adapters on frozen weights (small files, less memory; see the README's LoRA section).", AllowedValues = [TrainingMethods.Full, TrainingMethods.Lora])]
    public string Method { get; init; } = TrainingMethods.Full;

    [ConfigKey("LoRA rank r (diffusers' train_text_to_image_lora.py --rank).", Min = 1)]
    public int LoraRank { get; init; } = 4;

    [ConfigKey("LoRA alpha: the adapter's output is scaled by alpha / rank; 0 uses lora_rank (as diffusers' script sets lora_alpha = rank).", Min = 0)]
    public double LoraAlpha { get; init; }

    [ConfigKey("Dropout on the adapters' input while training (PEFT's lora_dropout).", Min = 0, Max = 1, MaxExclusive = true)]
    public double LoraDropout { get; init; }

    [ConfigKey("Layers of the UNet that get adapters: attention (to_q, to_k, to_v, to_out.0 of every attention, as diffusers' script) and resnets (conv1, conv2 and conv_shortcut of every resnet).", AllowedValues = ["attention", "resnets"])]
    public string[] LoraTargets { get; init; } = ["attention"];
}

/// <summary>Text-to-image from the base and the fine-tuned model (the `sample` stage).</summary>
public sealed class SampleSection
{
    [ConfigKey("Prompts to sample.")]
    public string[] Prompts { get; init; } = [];

    [ConfigKey("Also sample the captions of the first N held-out images (prompts the model never trained on).", Min = 0)]
    public int HeldoutPrompts { get; init; }

    [ConfigKey("Negative prompt (the unconditional side of classifier-free guidance).")]
    public string NegativePrompt { get; init; } = "";

    [ConfigKey("Classifier-free guidance scale; 1 or less disables guidance.", Min = 0)]
    public double GuidanceScale { get; init; } = 7.5;

    [ConfigKey("Sampler steps.", Min = 1, Max = 1000)]
    public int Steps { get; init; } = 30;

    [ConfigKey("Sampler: ddpm, ddim, pndm, euler, euler_ancestral or dpmsolver++; empty uses the model's scheduler.", AllowedValues = ["", "ddpm", "ddim", "pndm", "euler", "euler_ancestral", "dpmsolver++"])]
    public string Sampler { get; init; } = "";

    [ConfigKey("Image width in pixels; 0 uses latents.resolution.", Min = 0, Max = 8192, MultipleOf = 8)]
    public int Width { get; init; }

    [ConfigKey("Image height in pixels; 0 uses latents.resolution.", Min = 0, Max = 8192, MultipleOf = 8)]
    public int Height { get; init; }

    [ConfigKey("Seeds: each prompt is sampled once per seed, from the same noise for the base and the fine-tuned model.", Min = 0)]
    public long[] Seeds { get; init; } = [0, 1, 2, 3];

    [ConfigKey("Images generated per batch (memory; batched matmuls may round a pixel one step differently, so it is part of the samples' fingerprint).", Min = 1)]
    public int BatchSize { get; init; } = 4;

    [ConfigKey("A LoRA file (safetensors, diffusers/PEFT or kohya layout) to sample as base + LoRA instead of the train stage's result; empty samples what train made.")]
    public string Lora { get; init; } = "";

    [ConfigKey("Strength of the LoRA when sampling base + LoRA (train.method=lora or sample.lora): 1 as trained, 0 the base.")]
    public double LoraScale { get; init; } = 1.0;
}

/// <summary>
/// The training benchmark (`sdpipe benchmark`): a sweep of short training runs, one per cell of
/// mixed_precision × gradient_checkpointing × resolution, each in its own process.
/// </summary>
public sealed class BenchmarkSection
{
    [ConfigKey("Compute precisions to sweep (train.mixed_precision values).", AllowedValues = ["no", "bf16", "fp16"])]
    public string[] MixedPrecision { get; init; } = ["no", "bf16", "fp16"];

    [ConfigKey("Gradient checkpointing settings to sweep (train.gradient_checkpointing values).")]
    public bool[] GradientCheckpointing { get; init; } = [false, true];

    [ConfigKey("Training methods to sweep (train.method values).", AllowedValues = [TrainingMethods.Full, TrainingMethods.Lora])]
    public string[] Method { get; init; } = [TrainingMethods.Full, TrainingMethods.Lora];

    [ConfigKey("Resolutions to sweep: full is latents.resolution, half is half of it (rounded down to a multiple of 8); each has its own latent cache.", AllowedValues = ["full", "half"])]
    public string[] Resolution { get; init; } = ["full", "half"];

    [ConfigKey("Optimizer steps per cell before the timed ones (allocator, kernel selection and page faults settle in them); excluded from the figures.", Min = 0)]
    public int WarmupSteps { get; init; } = 2;

    [ConfigKey("Timed optimizer steps per cell: the step time is their median.", Min = 1)]
    public int TimedSteps { get; init; } = 5;

    [ConfigKey("Images per micro-batch in every cell; 0 uses train.train_batch_size.", Min = 0)]
    public int BatchSize { get; init; }

    [ConfigKey("Seconds a cell may run (process start to exit) before it is stopped and recorded as a timeout; 0 waits for ever.", Min = 0)]
    public int CellTimeoutSeconds { get; init; } = 600;
}

/// <summary>Every section of a run profile.</summary>
public sealed class RunConfig
{
    [JsonProperty("runtime")]
    public RuntimeSection Runtime { get; init; } = new();

    [JsonProperty("model")]
    public ModelSection Model { get; init; } = new();

    [JsonProperty("download")]
    public DownloadSection Download { get; init; } = new();

    [JsonProperty("latents")]
    public LatentsSection Latents { get; init; } = new();

    [JsonProperty("train")]
    public TrainSection Train { get; init; } = new();

    [JsonProperty("sample")]
    public SampleSection Sample { get; init; } = new();

    [JsonProperty("benchmark")]
    public BenchmarkSection Benchmark { get; init; } = new();
}
