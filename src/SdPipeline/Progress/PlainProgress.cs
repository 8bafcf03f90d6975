using System.Diagnostics;
using System.Globalization;

namespace SdPipeline.Progress;

/// <summary>
/// Progress as plain periodic lines (for CI logs and pipes, where a redrawn bar would be noise):
/// "download train.parquet: 12.3 MB / 45.0 MB (27%), 3.2 MB/s, ETA 0:10".
/// </summary>
public sealed class PlainProgress(TextWriter output, TimeSpan interval) : IProgressSink
{
    /// <inheritdoc />
    public IProgressTask Start(string description, double? total, ProgressUnit unit = ProgressUnit.Items) =>
        new Task(this, description, total, unit);

    private TimeSpan Interval => interval;

    private void Write(string line)
    {
        lock (output) output.WriteLine(line);
    }

    private sealed class Task(PlainProgress owner, string description, double? total, ProgressUnit unit) : IProgressTask
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private TimeSpan _lastPrinted = TimeSpan.Zero;
        private double _value;
        private double? _total = total;
        private bool _done;
        private string _status = "";

        public void SetStatus(string status) => _status = status;

        public void Advance(double amount) => SetValue(_value + amount);

        public void SetTotal(double newTotal) => _total = newTotal;

        public void SetValue(double value)
        {
            _value = value;
            if (_clock.Elapsed - _lastPrinted >= owner.Interval)
            {
                _lastPrinted = _clock.Elapsed;
                owner.Write(Line());
            }
        }

        public void Dispose()
        {
            if (_done) return;
            _done = true;
            owner.Write(Line() + " — done");
        }

        private string Line()
        {
            double seconds = Math.Max(_clock.Elapsed.TotalSeconds, 1e-3);
            double rate = _value / seconds;
            string amount = _total is { } t
                ? $"{ProgressFormat.Amount(_value, unit)} / {ProgressFormat.Amount(t, unit)} ({(t > 0 ? 100 * _value / t : 100).ToString("0", CultureInfo.InvariantCulture)}%)"
                : ProgressFormat.Amount(_value, unit);
            string speed = unit == ProgressUnit.Bytes
                ? $"{ProgressFormat.Bytes(rate)}/s"
                : $"{rate.ToString("0.0", CultureInfo.InvariantCulture)}/s";
            string eta = _total is { } total2 && rate > 0 && _value < total2
                ? $", ETA {ProgressFormat.Duration(TimeSpan.FromSeconds((total2 - _value) / rate))}"
                : "";
            return $"{description}: {amount}, {speed}{eta}{(_status.Length > 0 ? $", {_status}" : "")}";
        }
    }
}
