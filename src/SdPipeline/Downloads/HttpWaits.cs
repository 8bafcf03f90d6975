using System.Globalization;

namespace SdPipeline.Downloads;

/// <summary>
/// Bounded waits on a server: every wait for a connection, for response headers or for the next bytes ends,
/// and the error names the URL and the setting that bounded it. Ctrl+C (the caller's token) still ends any
/// wait at once, as a cancellation rather than a timeout.
/// </summary>
public static class HttpWaits
{
    /// <summary>
    /// Sends <paramref name="request"/> and waits for its headers, at most <see cref="DownloadSettings.StallTimeout"/>.
    /// A timeout names <paramref name="shown"/> (the URL the user gave, not a signed redirect target), by default the request's.
    /// </summary>
    /// <exception cref="TimeoutException">No connection within the connect timeout, or no headers within the stall timeout.</exception>
    public static async Task<HttpResponseMessage> SendAsync(HttpClient http, HttpRequestMessage request, DownloadSettings settings, CancellationToken cancellation, Uri? shown = null)
    {
        shown ??= request.RequestUri!;
        using var stall = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        stall.CancelAfter(settings.StallTimeout);
        try
        {
            return await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, stall.Token);
        }
        catch (OperationCanceledException e) when (!cancellation.IsCancellationRequested)
        {
            // The handler's connect timeout also surfaces as a cancellation, carrying a TimeoutException.
            throw stall.IsCancellationRequested || e.InnerException is not TimeoutException
                ? NoAnswer(shown, "sent no response headers", settings)
                : new TimeoutException($"could not connect to {request.RequestUri!.GetLeftPart(UriPartial.Authority)} (for {shown}) within {DownloadSettings.ConnectTimeoutKey} = {Seconds(settings.ConnectTimeout)} s", e);
        }
    }

    /// <summary>Reads the next bytes of <paramref name="body"/>, waiting at most <see cref="DownloadSettings.StallTimeout"/>.</summary>
    public static async Task<int> ReadAsync(Stream body, Memory<byte> buffer, Uri url, DownloadSettings settings, CancellationToken cancellation)
    {
        using var stall = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        stall.CancelAfter(settings.StallTimeout);
        try
        {
            return await body.ReadAsync(buffer, stall.Token);
        }
        catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
        {
            throw NoAnswer(url, "sent no more data", settings);
        }
    }

    /// <summary>Reads a whole (small) body as text, waiting at most <see cref="DownloadSettings.StallTimeout"/> for all of it.</summary>
    public static async Task<string> ReadStringAsync(HttpResponseMessage response, Uri url, DownloadSettings settings, CancellationToken cancellation)
    {
        using var stall = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        stall.CancelAfter(settings.StallTimeout);
        try
        {
            return await response.Content.ReadAsStringAsync(stall.Token);
        }
        catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
        {
            throw NoAnswer(url, "did not finish its answer", settings);
        }
    }

    private static TimeoutException NoAnswer(Uri url, string what, DownloadSettings settings) =>
        new($"{url} {what} within {DownloadSettings.StallTimeoutKey} = {Seconds(settings.StallTimeout)} s");

    private static string Seconds(TimeSpan span) => span.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture);

    /// <summary>The wait a Retry-After header asks for (seconds, or a date; never negative), or null.</summary>
    public static TimeSpan? RetryAfter(HttpResponseMessage response) => response.Headers.RetryAfter switch
    {
        { Delta: { } delta } => delta < TimeSpan.Zero ? TimeSpan.Zero : delta,
        { Date: { } date } => date - DateTimeOffset.UtcNow is var wait && wait > TimeSpan.Zero ? wait : TimeSpan.Zero,
        _ => null,
    };

    /// <summary>
    /// The server's own explanation of a refusal (the Hub's <c>X-Error-Message</c>, which huggingface_hub's
    /// <c>hf_raise_for_status</c> quotes too) as <c>: "…"</c> to append to a message, cut at 300 characters; "" when it gave none.
    /// </summary>
    public static string ServerSays(HttpResponseMessage response) =>
        response.Headers.TryGetValues("X-Error-Message", out var values) && string.Join(" ", values).Trim() is { Length: > 0 } text
            ? $": \"{(text.Length <= 300 ? text : text[..300] + "…")}\"" : "";
}
