using SdPipeline.Config;

namespace SdPipeline.Downloads;

/// <summary>
/// How patient a download is: how long to wait for a connection, for an answer or the next bytes, for a server
/// that asks to be retried later, and how many attempts without progress to make. The keys are named in
/// messages so that a user who meets a timeout knows which setting to change.
/// </summary>
public sealed record DownloadSettings
{
    /// <summary>The config key of <see cref="ConnectTimeout"/>.</summary>
    public const string ConnectTimeoutKey = "download.connect_timeout_seconds";

    /// <summary>The config key of <see cref="StallTimeout"/>.</summary>
    public const string StallTimeoutKey = "download.timeout_seconds";

    /// <summary>The config key of <see cref="MaxRetryWait"/>.</summary>
    public const string MaxRetryWaitKey = "download.max_retry_wait_seconds";

    /// <summary>The config key of <see cref="Attempts"/>.</summary>
    public const string AttemptsKey = "download.retries";

    /// <summary>Time to open a TCP (and TLS) connection.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Time without progress: waiting for the response headers, or between two reads of the body.</summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>The longest wait a server's <c>Retry-After</c> may impose before the next attempt.</summary>
    public TimeSpan MaxRetryWait { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Attempts per file that receive nothing; an attempt that added bytes to the file does not count.</summary>
    public int Attempts { get; init; } = 5;

    /// <summary>Delay before the second attempt; doubles after each failure without progress, up to 30 s.</summary>
    public TimeSpan FirstRetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The backoff after a failed attempt that waited <paramref name="delay"/>: doubled, at most 30 s.</summary>
    public static TimeSpan NextDelay(TimeSpan delay) => TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));

    /// <summary>The settings of the <c>download.*</c> keys; SDPIPE_RETRY_DELAY_MS sets the first retry delay (tests use a few ms).</summary>
    public static DownloadSettings From(DownloadSection section) => new()
    {
        ConnectTimeout = TimeSpan.FromSeconds(section.ConnectTimeoutSeconds),
        StallTimeout = TimeSpan.FromSeconds(section.TimeoutSeconds),
        MaxRetryWait = TimeSpan.FromSeconds(section.MaxRetryWaitSeconds),
        Attempts = section.Retries,
        FirstRetryDelay = int.TryParse(Environment.GetEnvironmentVariable("SDPIPE_RETRY_DELAY_MS"), out int ms) && ms >= 0
            ? TimeSpan.FromMilliseconds(ms) : TimeSpan.FromSeconds(1),
    };
}
