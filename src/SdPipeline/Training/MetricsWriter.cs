using System.Text;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;

namespace SdPipeline.Training;

/// <summary>
/// <c>metrics.jsonl</c>: one JSON object per optimizer step (<c>"kind": "train"</c>) and per held-out evaluation
/// (<c>"kind": "eval"</c>), flushed line by line so a crash loses nothing written. A resumed run first cuts
/// the file back to what its checkpoint had seen, so no step appears twice. Every record is mirrored to the
/// TensorBoard event files beside it (<see cref="TensorBoardLog"/>).
/// </summary>
public sealed class MetricsWriter : IDisposable
{
    private readonly StreamWriter _writer;
    private readonly TensorBoardLog _tensorBoard;

    /// <summary>Opens <paramref name="path"/>, keeping its first <paramref name="keepLines"/> lines.</summary>
    public MetricsWriter(string path, int keepLines)
    {
        var kept = File.Exists(path) ? File.ReadLines(path).Take(keepLines).ToList() : [];
        File.WriteAllLines(path, kept);
        Lines = kept.Count;
        Kept = kept.Select(JObject.Parse).ToList();
        _writer = new StreamWriter(path, append: true, new UTF8Encoding(false)) { NewLine = "\n", AutoFlush = true };
        _tensorBoard = new TensorBoardLog(Path.GetDirectoryName(Path.GetFullPath(path))!);
    }

    /// <summary>The TensorBoard event log the records are mirrored into (the validation images are written there too).</summary>
    public TensorBoardLog TensorBoard => _tensorBoard;

    /// <summary>The records kept from an earlier process (a resumed or continued run), oldest first.</summary>
    public IReadOnlyList<JObject> Kept { get; }

    /// <summary>Lines in the file.</summary>
    public int Lines { get; private set; }

    /// <summary>Appends one record.</summary>
    public void Write(JObject record)
    {
        _writer.WriteLine(record.ToString(Formatting.None));
        Lines++;
        _tensorBoard.Write(record);
    }

    /// <inheritdoc />
    public void Dispose() => _writer.Dispose();
}
