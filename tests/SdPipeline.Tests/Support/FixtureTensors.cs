using SdPipeline.Weights;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Support;

/// <summary>The tensors of one <c>parity/NAME.safetensors</c> fixture, read with the project's own reader.</summary>
public sealed class FixtureTensors : IDisposable
{
    private readonly SafeTensorsFile _file;

    private FixtureTensors(string path) => _file = SafeTensorsFile.Open(path);

    /// <summary>The file.</summary>
    public string Path => _file.Path;

    /// <summary>Opens <c>parity/NAME.safetensors</c> of the shared fixtures.</summary>
    public static FixtureTensors OpenParity(string name) =>
        new(System.IO.Path.Combine(RepoPaths.Fixtures, "parity", name + ".safetensors"));

    /// <summary>Opens any fixture file by its path relative to the fixtures folder.</summary>
    public static FixtureTensors Open(string relativePath) => new(System.IO.Path.Combine(RepoPaths.Fixtures, relativePath));

    /// <summary>The tensor names.</summary>
    public IEnumerable<string> Names => _file.Entries.Select(e => e.Name);

    /// <summary>Whether the file holds <paramref name="name"/>.</summary>
    public bool Contains(string name) => _file.Contains(name);

    /// <summary>A fresh tensor holding a copy of the named entry.</summary>
    public Tensor Get(string name) =>
        _file.Contains(name) ? _file.Read(name) : throw new KeyNotFoundException($"{Path} has no tensor '{name}'");

    /// <inheritdoc />
    public void Dispose() => _file.Dispose();
}
