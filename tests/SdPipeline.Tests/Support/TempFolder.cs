namespace SdPipeline.Tests.Support;

/// <summary>A fresh folder under the system temp folder (or under <c>parent</c>), deleted on dispose.</summary>
public sealed class TempFolder : IDisposable
{
    public string Path { get; }

    public TempFolder() : this(System.IO.Path.Combine(System.IO.Path.GetTempPath(), "sdpipe-tests")) { }

    public TempFolder(string parent)
    {
        Path = System.IO.Path.Combine(parent, Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Path);
    }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { }
    }

    /// <summary>Makes this folder a working directory the CLI runs the default profile in: configs/tiny.json and datasets.json.</summary>
    public void CopyTinyProfile()
    {
        Directory.CreateDirectory(File("configs"));
        System.IO.File.Copy(System.IO.Path.Combine(RepoPaths.Root, "configs", "tiny.json"), File("configs/tiny.json"));
        System.IO.File.Copy(System.IO.Path.Combine(RepoPaths.Root, "datasets.json"), File("datasets.json"));
    }
}
