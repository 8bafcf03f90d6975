using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.Weights;
using static TorchSharp.torch;

namespace SdPipeline.Verification;

/// <summary>
/// One fixture of a parity folder: <c>NAME.safetensors</c> (inputs and reference outputs) and its sidecar
/// <c>NAME.json</c> (what the file holds, the settings that produced it, and every tensor's dtype and shape).
/// </summary>
internal sealed class ParityFixture : IDisposable
{
    private readonly SafeTensorsFile _tensors;

    private ParityFixture(string name, string folder, SafeTensorsFile tensors, JObject sidecar)
    {
        Name = name;
        Folder = folder;
        _tensors = tensors;
        Sidecar = sidecar;
    }

    /// <summary>The fixture name (the files' stem).</summary>
    public string Name { get; }

    /// <summary>The parity folder.</summary>
    public string Folder { get; }

    /// <summary>The sidecar JSON.</summary>
    public JObject Sidecar { get; }

    private string TensorsFile => $"{Name}.safetensors";

    private string SidecarFile => $"{Name}.json";

    /// <summary>Opens both files and checks that the tensors the sidecar lists are in the file with that dtype and shape.</summary>
    /// <exception cref="ParityFixtureException">A file is missing or unreadable, or the two disagree.</exception>
    public static ParityFixture Open(string folder, string name)
    {
        string tensorsPath = Path.Combine(folder, name + ".safetensors");
        string sidecarPath = Path.Combine(folder, name + ".json");
        if (!File.Exists(sidecarPath)) throw new ParityFixtureException($"no sidecar {name}.json beside {name}.safetensors");
        if (!File.Exists(tensorsPath)) throw new ParityFixtureException($"no {name}.safetensors beside {name}.json");

        JObject sidecar;
        try
        {
            sidecar = JToken.Parse(File.ReadAllText(sidecarPath)) as JObject
                ?? throw new ParityFixtureException($"{name}.json is not a JSON object");
        }
        catch (JsonReaderException e)
        {
            throw new ParityFixtureException($"{name}.json: invalid JSON at line {e.LineNumber}: {e.Message}");
        }

        SafeTensorsFile tensors;
        try
        {
            tensors = SafeTensorsFile.Open(tensorsPath);
        }
        catch (WeightsException e)
        {
            throw new ParityFixtureException(e.Message);
        }

        var fixture = new ParityFixture(name, folder, tensors, sidecar);
        try
        {
            fixture.CheckSidecarListing();
        }
        catch
        {
            fixture.Dispose();
            throw;
        }
        return fixture;
    }

    /// <summary>Whether the file holds <paramref name="key"/>.</summary>
    public bool Contains(string key) => _tensors.Contains(key);

    /// <summary>The tensor names, in file order.</summary>
    public IEnumerable<string> Keys => _tensors.Entries.Select(e => e.Name);

    /// <summary>A new CPU tensor holding <paramref name="key"/>.</summary>
    /// <exception cref="ParityFixtureException">The file has no such tensor.</exception>
    public Tensor Get(string key) =>
        _tensors.Contains(key) ? _tensors.Read(key) : throw new ParityFixtureException($"{TensorsFile} has no tensor '{key}'");

    /// <summary>A sidecar value, or the default when the key is absent or null.</summary>
    /// <exception cref="ParityFixtureException">The value has the wrong type.</exception>
    public T? Setting<T>(string key)
    {
        var token = Sidecar[key];
        if (token is null || token.Type == JTokenType.Null) return default;
        try
        {
            return token.ToObject<T>();
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidCastException or ArgumentException)
        {
            throw new ParityFixtureException($"{SidecarFile}: '{key}' is {token.Type}, expected {typeof(T).Name}");
        }
    }

    /// <summary>A sidecar value the check cannot do without.</summary>
    /// <exception cref="ParityFixtureException">The key is absent, null or of the wrong type.</exception>
    public T Require<T>(string key) => Setting<T>(key) ?? throw new ParityFixtureException($"{SidecarFile} has no '{key}'");

    /// <inheritdoc />
    public void Dispose() => _tensors.Dispose();

    private void CheckSidecarListing()
    {
        if (Sidecar["tensors"] is not JObject listed) return;
        foreach (var property in listed.Properties())
        {
            if (!_tensors.Contains(property.Name))
                throw new ParityFixtureException($"{SidecarFile} lists '{property.Name}', which {TensorsFile} does not hold");
            var entry = _tensors.Entry(property.Name);
            long[]? shape = property.Value["shape"]?.ToObject<long[]>();
            if (shape is not null && !shape.SequenceEqual(entry.Shape))
                throw new ParityFixtureException(
                    $"'{property.Name}' has shape [{string.Join(", ", entry.Shape)}] in {TensorsFile} but [{string.Join(", ", shape)}] in {SidecarFile}");
            string? dtype = property.Value.Value<string>("dtype");
            if (dtype is not null && SidecarDType(dtype) is { } type && type != entry.DType)
                throw new ParityFixtureException($"'{property.Name}' is {entry.DType} in {TensorsFile} but {dtype} in {SidecarFile}");
        }
    }

    private static ScalarType? SidecarDType(string name) => name switch
    {
        "float32" => ScalarType.Float32,
        "float64" => ScalarType.Float64,
        "float16" => ScalarType.Float16,
        "bfloat16" => ScalarType.BFloat16,
        "int64" => ScalarType.Int64,
        "int32" => ScalarType.Int32,
        "int16" => ScalarType.Int16,
        "int8" => ScalarType.Int8,
        "uint8" => ScalarType.Byte,
        "bool" => ScalarType.Bool,
        _ => null,
    };
}
