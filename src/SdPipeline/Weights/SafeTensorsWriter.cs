using System.Text;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.Files;
using static TorchSharp.torch;

namespace SdPipeline.Weights;

/// <summary>
/// Writes safetensors files that diffusers, transformers and other tools load: header keys sorted,
/// header padded with spaces to 8 bytes, <c>__metadata__ {"format": "pt"}</c> (transformers checks it).
/// The file is written beside its destination and renamed, so a crash never leaves half a checkpoint.
/// </summary>
public static class SafeTensorsWriter
{
    /// <summary>Writes <paramref name="tensors"/> to <paramref name="path"/>.</summary>
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var names = tensors.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
        var header = new JObject();
        var meta = new JObject { ["format"] = "pt" };
        foreach (var (key, value) in metadata ?? new Dictionary<string, string>()) meta[key] = value;
        header["__metadata__"] = meta;
        long offset = 0;
        foreach (string name in names)
        {
            var tensor = tensors[name];
            long length = tensor.NumberOfElements * tensor.ElementSize;
            header[name] = new JObject
            {
                ["dtype"] = SafeTensorsDType.Name(tensor.dtype),
                ["shape"] = new JArray(tensor.shape),
                ["data_offsets"] = new JArray(offset, offset + length),
            };
            offset += length;
        }
        byte[] headerBytes = Encoding.UTF8.GetBytes(header.ToString(Formatting.None));
        int padding = (8 - headerBytes.Length % 8) % 8;

        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
        AtomicFile.Write(path, temp =>
        {
            using var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
            stream.Write(BitConverter.GetBytes((long)(headerBytes.Length + padding)));
            stream.Write(headerBytes);
            for (int i = 0; i < padding; i++) stream.WriteByte((byte)' ');
            foreach (string name in names)
            {
                var tensor = tensors[name];
                if (tensor.NumberOfElements == 0) continue;
                using var cpu = tensor.device_type == TorchSharp.DeviceType.CPU && tensor.is_contiguous() ? null : tensor.detach().cpu().contiguous();
                stream.Write((cpu ?? tensor).bytes);
            }
        });
    }
}
