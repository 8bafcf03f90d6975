using System.Security.Cryptography;
using System.Text;
using Newtonsoft.Json.Linq;

namespace SdPipeline.Tests.Support;

/// <summary>A Hugging Face Hub model repository served by <see cref="TestHttpServer"/>: revision, tree and resolve endpoints.</summary>
public sealed class FakeHub
{
    public const string Commit = "1234567890abcdef1234567890abcdef12345678";

    public static readonly string[] LfsFiles =
    [
        "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
        "safety_checker/model.safetensors", "v1-5-pruned-emaonly.ckpt",
    ];

    public static readonly string[] SmallFiles =
    [
        "model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json", "scheduler/scheduler_config.json",
        "tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer/tokenizer_config.json", "tokenizer/special_tokens_map.json", "README.md",
    ];

    public FakeHub(TestHttpServer server, string repo, IReadOnlyDictionary<string, byte[]>? files = null, string commit = Commit)
    {
        Files = files?.ToDictionary(p => p.Key, p => p.Value)
            ?? LfsFiles.Concat(SmallFiles).ToDictionary(p => p, p => Encoding.UTF8.GetBytes($"content of {p} " + new string('x', p.Length * 37)));
        server.ServeJson($"/api/models/{repo}/revision/main", $$"""{"sha": "{{commit}}"}""");
        var tree = new JArray(Files.Select(f => IsLfs(f.Key)
            ? new JObject { ["type"] = "file", ["path"] = f.Key, ["size"] = f.Value.Length, ["oid"] = "00", ["lfs"] = new JObject { ["oid"] = Sha256(f.Value), ["size"] = f.Value.Length } }
            : new JObject { ["type"] = "file", ["path"] = f.Key, ["size"] = f.Value.Length, ["oid"] = GitOid(f.Value) }));
        server.ServeJson($"/api/models/{repo}/tree/{commit}", tree.ToString());
        foreach (var (path, bytes) in Files) server.Serve($"/{repo}/resolve/{commit}/{path}", bytes);
    }

    public Dictionary<string, byte[]> Files { get; }

    private static bool IsLfs(string path) => path.EndsWith(".safetensors") || path.EndsWith(".ckpt") || path.EndsWith(".bin");

    public static string Sha256(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    public static string GitOid(byte[] bytes) =>
        Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {bytes.Length}\0"), .. bytes]));
}
