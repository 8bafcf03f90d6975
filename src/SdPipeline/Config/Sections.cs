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

    [ConfigKey("Threads for CPU tensor work; 0 uses every core.")]
    public int Threads { get; init; }
}

/// <summary>The base model (the `model` stage).</summary>
public sealed class ModelSection
{
    [ConfigKey("Base model: builtin:tiny, hf:org/name[@revision], or a local diffusers folder.")]
    public string Base { get; init; } = "builtin:tiny";

    [ConfigKey("Precision variant of the weights to fetch and load (for example fp16: diffusion_pytorch_model.fp16.safetensors); empty for the full-precision files. Weights are used in float32 either way.")]
    public string Variant { get; init; } = "";

    [ConfigKey("Seed of builtin:tiny's initial weights.")]
    public int BuiltinSeed { get; init; }

    [ConfigKey("Text-encoder layers to skip at the end (diffusers' clip_skip: 1 uses the penultimate layer); used for cached embeddings, training and sampling alike.")]
    public int ClipSkip { get; init; }
}

/// <summary>Image preprocessing and the latent cache (the `latents` stage).</summary>
public sealed class LatentsSection
{
    [ConfigKey("Training resolution in pixels: the short side is resized to it (or buckets of about this many pixels squared).")]
    public int Resolution { get; init; } = 512;

    [ConfigKey("Resampling filter of the resize, as diffusers' --image_interpolation_mode.", AllowedValues = ["lanczos", "bilinear", "bicubic"])]
    public string Interpolation { get; init; } = "lanczos";

    [ConfigKey("Crop the centre (true) or a random window (false, diffusers' default) of the resized image.")]
    public bool CenterCrop { get; init; }

    [ConfigKey("Flip images left-right at random (diffusers' --random_flip); cached as separate variants.")]
    public bool RandomFlip { get; init; }

    [ConfigKey("Augmented variants cached per image (random crops and flips); training draws one per epoch. At least 2 when random_flip is on; 1 when neither random crops nor flips apply.")]
    public int Variants { get; init; } = 1;

    [ConfigKey("Seed of the random crops and flips.")]
    public int Seed { get; init; }

    [ConfigKey("Aspect-ratio bucketing: train each image whole at the bucket nearest its aspect ratio instead of cropping it square.")]
    public bool Bucketing { get; init; }

    [ConfigKey("Smallest bucket side in pixels; 0 means resolution/2.")]
    public int BucketMinSide { get; init; }

    [ConfigKey("Largest bucket side in pixels; 0 means resolution×2.")]
    public int BucketMaxSide { get; init; }

    [ConfigKey("Images encoded per VAE batch (memory, not results: lower it if the device runs out of memory).")]
    public int BatchSize { get; init; } = 8;

    [ConfigKey("Rows per shard file; an interrupted run resumes from the finished shards.")]
    public int ShardSize { get; init; } = 256;

    [ConfigKey("Storage dtype of the text-encoder hidden states.", AllowedValues = ["float16", "bfloat16", "float32"])]
    public string EmbeddingDtype { get; init; } = "float16";

    [ConfigKey("Storage dtype of the VAE posterior (mean and std).", AllowedValues = ["float32", "float16", "bfloat16"])]
    public string PosteriorDtype { get; init; } = "float32";

    [ConfigKey("Fail the stage when more than this share of images cannot be used.")]
    public double MaxSkippedFraction { get; init; } = 0.05;
}

/// <summary>The dataset (the `download` stage).</summary>
public sealed class DownloadSection
{
    [ConfigKey("Name of the dataset in the registry (download.registry).")]
    public string Dataset { get; init; } = "shapes";

    [ConfigKey("Path of the dataset registry JSON file. Only the chosen entry's content is part of the fingerprint.")]
    public string Registry { get; init; } = "datasets.json";

    [ConfigKey("Items to take: the first N of the source (for synthetic sources, N to generate); 0 takes the registry's full size.")]
    public int Count { get; init; }

    [ConfigKey("Images whose shorter side is below this many pixels are skipped.")]
    public int MinSide { get; init; } = 32;

    [ConfigKey("Images with more pixels than this are skipped before decoding (a decompression-bomb guard).")]
    public long MaxPixels { get; init; } = 64L * 1024 * 1024;

    [ConfigKey("Share of items put in the held-out split, chosen by a hash of the item id, for datasets without their own split.")]
    public double HeldoutFraction { get; init; } = 0.05;

    [ConfigKey("Attempts per file download before giving up (with exponential backoff between them).")]
    public int Retries { get; init; } = 5;

    [ConfigKey("Seconds without progress before a download attempt is abandoned and resumed.")]
    public int TimeoutSeconds { get; init; } = 60;
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
}
