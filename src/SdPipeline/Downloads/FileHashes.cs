using System.Security.Cryptography;
using System.Text;

namespace SdPipeline.Downloads;

/// <summary>The hashes a downloaded file is checked against, computed without reading it into memory.</summary>
public static class FileHashes
{
    /// <summary>The SHA-256 of a file, lowercase hex.</summary>
    public static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <summary>The git blob id of a file: SHA-1 over "blob SIZE\0" and the content, as git (and the Hub, for files outside LFS) names it.</summary>
    public static string GitBlobId(string path)
    {
        using var stream = File.OpenRead(path);
        using var sha1 = IncrementalHash.CreateHash(HashAlgorithmName.SHA1);
        sha1.AppendData(Encoding.ASCII.GetBytes($"blob {stream.Length}\0"));
        var buffer = new byte[1 << 16];
        int read;
        while ((read = stream.Read(buffer)) > 0) sha1.AppendData(buffer, 0, read);
        return Convert.ToHexStringLower(sha1.GetHashAndReset());
    }
}
