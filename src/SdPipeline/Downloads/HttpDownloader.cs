using System.Net;
using System.Security.Cryptography;
using SdPipeline.Pipeline;
using SdPipeline.Progress;

namespace SdPipeline.Downloads;

/// <summary>
/// Downloads that survive bad networks: a partial file (<c>DEST.part</c>) is resumed with an HTTP Range
/// request after a dropped connection or a stall, attempts back off exponentially, and the result is
/// checked against its SHA-256 before it is renamed into place, so a file at DEST is always complete.
/// Redirects are followed by hand so the Hub token is sent to the Hub only, never to a CDN it redirects to.
/// </summary>
public sealed class HttpDownloader(HttpClient http, Action<HttpRequestMessage>? authorize = null)
{
    /// <summary>Attempts per file.</summary>
    public int Attempts { get; init; } = 5;

    /// <summary>Delay before the second attempt; doubles after each failure, up to 30 s.</summary>
    public TimeSpan FirstRetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Time without any bytes after which an attempt is abandoned (and resumed).</summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Suffix of the partial file beside the destination (<c>.incomplete</c> in the Hub cache, as huggingface_hub names it, so either tool resumes the other's download).</summary>
    public string PartSuffix { get; init; } = ".part";

    /// <summary>Where to write a line for the user (retries, reuse).</summary>
    public Action<string> Log { get; init; } = _ => { };

    /// <summary>Fetches <paramref name="request"/> unless a verified copy is already at its destination.</summary>
    /// <returns>Bytes transferred over the network by this call.</returns>
    /// <exception cref="StageFailedException">404, refused access, checksum mismatch, or every attempt failed.</exception>
    public async Task<long> DownloadAsync(DownloadRequest request, IProgressSink progress, CancellationToken cancellation)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(request.Destination))!);
        if (File.Exists(request.Destination) && IsComplete(request))
            return 0;

        string part = request.Destination + PartSuffix;
        long transferred = 0;
        var delay = FirstRetryDelay;
        using var bar = progress.Start(request.Label, request.Size, ProgressUnit.Bytes);
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                transferred += await AttemptAsync(request, part, bar, cancellation);
                break;
            }
            catch (Exception e) when (IsTransient(e, cancellation) && attempt < Attempts)
            {
                long have = File.Exists(part) ? new FileInfo(part).Length : 0;
                Log($"{request.Label}: attempt {attempt} failed ({Describe(e)}); resuming from byte {have} in {delay.TotalSeconds:0.#} s");
                await Task.Delay(delay, cancellation);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
            }
            catch (Exception e) when (IsTransient(e, cancellation))
            {
                throw new StageFailedException($"{request.Label}: download of {request.Url} failed after {Attempts} attempts: {Describe(e)}", e);
            }
        }

        if (request.Sha256 is not null)
        {
            string actual = HashFile(part);
            if (!string.Equals(actual, request.Sha256, StringComparison.OrdinalIgnoreCase))
            {
                File.Delete(part);
                throw new StageFailedException(
                    $"{request.Label}: checksum mismatch for {request.Url}: expected SHA-256 {request.Sha256}, got {actual}. " +
                    "The file was deleted; if the source changed on purpose, update the sha256 in datasets.json");
            }
        }
        File.Move(part, request.Destination, overwrite: true);
        return transferred;
    }

    private bool IsComplete(DownloadRequest request)
    {
        if (request.Size is { } size && new FileInfo(request.Destination).Length != size) return false;
        if (request.Sha256 is not null && !string.Equals(HashFile(request.Destination), request.Sha256, StringComparison.OrdinalIgnoreCase))
        {
            Log($"{request.Label}: the cached copy does not match its SHA-256; downloading again");
            return false;
        }
        return true;
    }

    private async Task<long> AttemptAsync(DownloadRequest request, string part, IProgressTask bar, CancellationToken cancellation)
    {
        long have = File.Exists(part) ? new FileInfo(part).Length : 0;
        if (request.Size is { } expected && have == expected) return 0; // finished before, not yet verified
        if (request.Size is { } size && have > size) { File.Delete(part); have = 0; }

        using var response = await SendFollowingRedirectsAsync(request, have, cancellation);
        if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            // The server says our partial file is as long as (or longer than) the file: start over.
            File.Delete(part);
            throw new IOException("range not satisfiable; restarting from byte 0");
        }
        if (!response.IsSuccessStatusCode)
            throw Failure(request, response.StatusCode);

        bool resumed = response.StatusCode == HttpStatusCode.PartialContent;
        if (!resumed) have = 0; // the server ignored the Range header: rewrite from the start
        if (resumed && response.Content.Headers.ContentRange?.From != have)
        {
            // Appending bytes from anywhere but where the partial file ends would splice two different files.
            File.Delete(part);
            throw new IOException($"the server resumed at byte {response.Content.Headers.ContentRange?.From?.ToString() ?? "(no Content-Range)"}, not at {have}; restarting from byte 0");
        }
        long? total = response.Content.Headers.ContentRange?.Length ?? (response.Content.Headers.ContentLength is { } length ? length + have : request.Size);
        if (total is { } t) bar.SetTotal(t);
        bar.SetValue(have);

        await using var output = new FileStream(part, resumed ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
        await using var input = await response.Content.ReadAsStreamAsync(cancellation);
        var buffer = new byte[1 << 16];
        long received = 0;
        using var stall = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        while (true)
        {
            stall.CancelAfter(StallTimeout);
            int read;
            try
            {
                read = await input.ReadAsync(buffer, stall.Token);
            }
            catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
            {
                throw new TimeoutException($"no data for {StallTimeout.TotalSeconds:0} s");
            }
            if (read == 0) break;
            await output.WriteAsync(buffer.AsMemory(0, read), cancellation);
            received += read;
            bar.Advance(read);
        }
        await output.FlushAsync(cancellation);
        if (total is { } complete && have + received < complete)
            throw new IOException($"connection closed after {have + received} of {complete} bytes");
        return received;
    }

    private async Task<HttpResponseMessage> SendFollowingRedirectsAsync(DownloadRequest request, long offset, CancellationToken cancellation)
    {
        var url = request.Url;
        for (int hop = 0; hop < 10; hop++)
        {
            using var message = new HttpRequestMessage(HttpMethod.Get, url);
            if (offset > 0) message.Headers.Range = new System.Net.Http.Headers.RangeHeaderValue(offset, null);
            authorize?.Invoke(message);
            var response = await http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancellation);
            if ((int)response.StatusCode is >= 300 and < 400 && response.Headers.Location is { } location)
            {
                url = location.IsAbsoluteUri ? location : new Uri(url, location);
                response.Dispose();
                continue;
            }
            return response;
        }
        throw new StageFailedException($"{request.Label}: too many redirects from {request.Url}");
    }

    private static Exception Failure(DownloadRequest request, HttpStatusCode status) => (int)status switch
    {
        404 => new StageFailedException($"{request.Label}: {request.Url} returned 404 Not Found; check the URL in datasets.json"),
        401 or 403 => new StageFailedException($"{request.Label}: access to {request.Url} was refused ({(int)status}); for Hub files set HF_TOKEN to a token with access"),
        >= 500 or 429 or 408 => new HttpRequestException($"HTTP {(int)status} {status}", null, status),
        _ => new StageFailedException($"{request.Label}: {request.Url} returned {(int)status} {status}"),
    };

    private static bool IsTransient(Exception e, CancellationToken cancellation) =>
        !cancellation.IsCancellationRequested && e is IOException or HttpRequestException or TimeoutException;

    private static string Describe(Exception e) => e is HttpRequestException { StatusCode: { } status }
        ? $"HTTP {(int)status}"
        : e.Message;

    private static string HashFile(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
