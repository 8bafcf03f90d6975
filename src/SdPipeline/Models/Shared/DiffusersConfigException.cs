using SdPipeline.Errors;

namespace SdPipeline.Models.Shared;

/// <summary>
/// A model <c>config.json</c> (diffusers', or transformers' for the CLIP text encoders) this port cannot build: a
/// malformed value, inconsistent lengths, or a setting (such as <c>class_embed_type</c>) whose code path is not
/// ported. The message names the file, key and value. The model folder is the data at fault, so the CLI exits with 1.
/// </summary>
public sealed class DiffusersConfigException(string message, Exception? inner = null) : ActionableException(ErrorKind.Data, message, inner);
