namespace SdPipeline.Verification;

/// <summary>
/// Collects the rows of a run. Each row is computed by its own delegate, so an error in one (a missing tensor, a
/// model that throws) becomes that row's failure and the other rows still run.
/// </summary>
internal sealed class ParityRows(Action<ParityRow>? onRow)
{
    private readonly List<ParityRow> _rows = [];

    public IReadOnlyList<ParityRow> All => _rows;

    public void Add(ParityRow row)
    {
        _rows.Add(row);
        onRow?.Invoke(row);
    }

    /// <summary>Adds the row of <paramref name="check"/> from its comparisons, or a failed row if computing them throws.</summary>
    public void Check(string check, Func<IReadOnlyList<TensorComparison>> compare, string? note = null) =>
        Add(Guard(check, () => ParityRow.From(check, compare(), note)));

    /// <summary>Adds a row computed by <paramref name="row"/>, or a failed row if it throws.</summary>
    public void Check(string check, Func<ParityRow> row) => Add(Guard(check, row));

    /// <summary>Runs <paramref name="action"/>; if it throws, adds a failed row named <paramref name="check"/>.</summary>
    public void Run(string check, Action action)
    {
        try
        {
            action();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Add(Failure(check, e));
        }
    }

    /// <summary>The failed row an exception stands for.</summary>
    public static ParityRow Failure(string check, Exception e) => e switch
    {
        ParityFixtureException => ParityRow.CannotInterpret(check, e.Message),
        ModelComponentException => ParityRow.Error(check, e.Message),
        _ => ParityRow.Error(check, $"error: {e.GetType().Name}: {FirstLine(e.Message)}"),
    };

    private static ParityRow Guard(string check, Func<ParityRow> row)
    {
        try
        {
            return row();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return Failure(check, e);
        }
    }

    // libtorch messages carry a C++ backtrace after the first line.
    private static string FirstLine(string message) => message.Split('\n', 2)[0].Trim();
}
