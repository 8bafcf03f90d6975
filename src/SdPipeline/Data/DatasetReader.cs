using Newtonsoft.Json;

namespace SdPipeline.Data;

/// <summary>Reads the normalised dataset the download stage wrote.</summary>
public static class DatasetReader
{
    /// <summary>The items of the dataset in <paramref name="folder"/>, in file order.</summary>
    public static IReadOnlyList<DatasetItem> Items(string folder)
    {
        string path = Path.Combine(folder, DatasetWriter.ItemsFile);
        var items = new List<DatasetItem>();
        int line = 0;
        foreach (string text in File.ReadLines(path))
        {
            line++;
            if (string.IsNullOrWhiteSpace(text)) continue;
            items.Add(JsonConvert.DeserializeObject<DatasetItem>(text)
                ?? throw new InvalidDataException($"{path}:{line}: empty item"));
        }
        return items;
    }

    /// <summary>The encoded bytes of an item's image.</summary>
    public static byte[] ImageBytes(string folder, DatasetItem item) => File.ReadAllBytes(Path.Combine(folder, item.File));
}
