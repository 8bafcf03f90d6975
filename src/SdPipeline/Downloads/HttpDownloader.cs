using System.Globalization;
using System.Net;
using SdPipeline.Files;
using SdPipeline.Pipeline;
using SdPipeline.Progress;

namespace SdPipeline.Downloads;

/// <summary>
/// Downloads that survive bad networks: a partial file (<c>DEST.part</c>) is resumed with an HTTP Range
/// request after a dropped connection or a stall, attempts back off exponentially, and the result is
/// checked against its SHA-256 (or git blob id) before it is renamed into place, so a file at DEST is always
/// complete. Redirects are followed by hand so the Hub token is sent to the Hub only, never to a CDN it
/// redirects to. Two processes fetching the same file take turns on a lock beside it: the second waits, and
/// then finds the first's result.
/// </summary>
public sealed class HttpDownloader(HttpClient http, Action<HttpRequestMessage>? authorize = null)
{
    /// <summary>Timeouts, attempts and waits.</summary>
    public DownloadSettings Settings { get; init; } = new();

    /// <summary>Suffix of the partial file beside the destination (<c>.incomplete</c> in the Hub cache, as huggingface_hub names it, so either tool resumes the other's download).</summary>
    public string PartSuffix { get; init; } = ".part";

    /// <summary>How long to wait for another process that is downloading the same file.</summary>
    public TimeSpan LockTimeout { get; init; } = TimeSpan.FromDays(1);

    /// <summary>Where to write a line for the user (retries, reuse).</summary>
    public Action<string> Log { get; init; } = _ => { };

    /// <summary>Fetches <paramref name="request"/> unless a verified copy is already at its destination.</summary>
    /// <returns>Bytes transferred over the network by this call.</returns>
    /// <exception cref="StageFailedException">404, refused access, checksum mismatch, or every attempt failed.</exception>
    public async Task<long> DownloadAsync(DownloadRequest request, IProgressSink progress, CancellationToken cancellation)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(request.Destination))!);
        if (File.Exists(request.Destination) && Mismatch(request) is null)
            return 0;

        using var turn = TakeTurn(request, cancellation);
        if (File.Exists(request.Destination))
        {
            // Another process may have finished it while this one waited for the lock.
            if (Mismatch(request) is not { } problem) return 0;
            Log($"{request.Label}: the cached copy {problem}; downloading again");
        }

        string part = request.Destination + PartSuffix;
        long transferred = 0;
        var delay = Settings.FirstRetryDelay;
        long longest = Length(part);
        int fruitless = 0;
        using var bar = progress.Start(request.Label, request.Size, ProgressUnit.Bytes);
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                transferred += await AttemptAsync(request, part, bar, cancellation);
                break;
            }
            catch (Exception e) when (DiskFull.Is(e))
            {
                // Another attempt would fail alike after its backoff, and "download failed" would blame the network.
                throw new StageFailedException($"{request.Label}: cannot write {part} ({e.Message}): {DiskFull.Advice}", e);
            }
            catch (Exception e) when (IsTransient(e, cancellation))
            {
                // An attempt that made the partial file longer than ever before is progress, not a failure: a long
                // download over a link that drops every few minutes finishes. Only attempts that add nothing count.
                long have = Length(part);
                bool progressed = have > longest;
                longest = Math.Max(longest, have);
                if (progressed) delay = Settings.FirstRetryDelay;
                else if (++fruitless >= Settings.Attempts)
                    throw new StageFailedException($"{request.Label}: download of {request.Url} failed: {Describe(e)} " +
                        $"({attempt} attempts, {fruitless} without progress; {DownloadSettings.AttemptsKey} = {Settings.Attempts})", e);

                var (wait, why) = RetryWait(e, delay);
                Log($"{request.Label}: attempt {attempt} failed ({Describe(e)}){why}; resuming from byte {Length(part)} in {Seconds(wait)} s");
                await Task.Delay(wait, cancellation);
                if (!progressed) delay = DownloadSettings.NextDelay(delay);
            }
        }

        if (Verify(request, part) is { } mismatch)
        {
            File.Delete(part);
            File.Delete(ValidatorFile(part));
            throw new StageFailedException(
                $"{request.Label}: checksum mismatch for {request.Url}: {mismatch}. The file was deleted; run again to fetch it anew. " +
                (request.GitBlobId is null
                    ? "If it fails the same way and the source changed on purpose, update the sha256 in datasets.json"
                    : "If it fails the same way, the server sends other bytes than the Hub's listing names"));
        }
        File.Move(part, request.Destination, overwrite: true);
        File.Delete(ValidatorFile(part));
        return transferred;
    }

    /// <summary>
    /// The lock that keeps a second process (another stage, another run) off this file's <c>.part</c>. It is an OS
    /// lock (<see cref="FileLock"/>), released when its holder exits or is killed, so a lock file left behind never blocks.
    /// </summary>
    private FileLock TakeTurn(DownloadRequest request, CancellationToken cancellation)
    {
        string path = request.LockFile ?? request.Destination + ".lock";
        try
        {
            return FileLock.Acquire(path, LockTimeout,
                () => Log($"{request.Label}: another process is downloading this file (lock {path}); waiting for it"), cancellation);
        }
        catch (TimeoutException e)
        {
            throw new StageFailedException($"{request.Label}: another process held the download lock {path} for {LockTimeout.TotalHours:0.#} h; " +
                "if no sdpipe is running, check for a hung process holding it", e);
        }
    }

    /// <summary>Why the file at the destination is not the expected one, or null when it is.</summary>
    private static string? Mismatch(DownloadRequest request)
    {
        if (request.Size is { } size && new FileInfo(request.Destination).Length != size)
            return $"has {new FileInfo(request.Destination).Length} bytes, not {size}";
        return Verify(request, request.Destination) is { } problem ? $"does not match: {problem}" : null;
    }

    private static string? Verify(DownloadRequest request, string path)
    {
        if (request.Sha256 is { } sha256 && FileHashes.Sha256(path) is var actual && !string.Equals(actual, sha256, StringComparison.OrdinalIgnoreCase))
            return $"expected SHA-256 {sha256}, got {actual}";
        if (request.GitBlobId is { } blob && FileHashes.GitBlobId(path) is var actualBlob && !string.Equals(actualBlob, blob, StringComparison.OrdinalIgnoreCase))
            return $"expected git blob id {blob}, got {actualBlob}";
        return null;
    }

    private async Task<long> AttemptAsync(DownloadRequest request, string part, IProgressTask bar, CancellationToken cancellation)
    {
        long have = Length(part);
        if (request.Size is { } expected && have == expected) return 0; // finished before, not yet verified
        if (request.Size is { } size && have > size) have = Restart(part);
        string? validator = have > 0 && File.Exists(ValidatorFile(part)) ? File.ReadAllText(ValidatorFile(part)).Trim() : null;
        if (have > 0 && validator is null && request.Sha256 is null && request.GitBlobId is null)
        {
            // Nothing would tell a changed file from the one the partial file began: no hash to check the result
            // against, and no ETag or Last-Modified to send as If-Range. Resuming could splice two versions.
            Log($"{request.Label}: the partial download has no ETag or Last-Modified to resume against, and the file no checksum; starting over");
            have = Restart(part);
        }

        using var response = await SendFollowingRedirectsAsync(request, have, validator, cancellation);
        if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            // The server says our partial file is as long as (or longer than) the file: start over.
            Restart(part);
            throw new IOException("range not satisfiable; restarting from byte 0");
        }
        if (!response.IsSuccessStatusCode)
            throw Failure(request, response);

        bool resumed = have > 0 && response.StatusCode == HttpStatusCode.PartialContent;
        if (resumed && response.Content.Headers.ContentRange?.From != have)
        {
            // Appending bytes from anywhere but where the partial file ends would splice two different files.
            Restart(part);
            throw new IOException($"the server resumed at byte {response.Content.Headers.ContentRange?.From?.ToString(CultureInfo.InvariantCulture) ?? "(no Content-Range)"}, not at {have}; restarting from byte 0");
        }
        string? now = Validator(response);
        if (resumed && validator is not null && now is not null && now != validator)
        {
            // A server that ignores If-Range sends the new version's bytes as if they continued the old one.
            Restart(part);
            throw new IOException($"the file changed on the server since the partial download began ({validator} → {now}); restarting from byte 0");
        }
        if (!resumed)
        {
            // A full answer (the first, or the server's "it changed" answer to If-Range) starts the partial file over.
            have = 0;
            if (now is null) File.Delete(ValidatorFile(part));
            else File.WriteAllText(ValidatorFile(part), now);
        }
        long? total = response.Content.Headers.ContentRange?.Length ?? (response.Content.Headers.ContentLength is { } length ? length + have : request.Size);
        if (total is { } t) bar.SetTotal(t);
        bar.SetValue(have);

        await using var output = new FileStream(part, resumed ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
        await using var input = await response.Content.ReadAsStreamAsync(cancellation);
        var buffer = new byte[1 << 16];
        long received = 0;
        while (true)
        {
            int read = await HttpWaits.ReadAsync(input, buffer, request.Url, Settings, cancellation);
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

    private static long Restart(string part)
    {
        File.Delete(part);
        File.Delete(ValidatorFile(part));
        return 0;
    }

    /// <summary>What identifies this version of the file for If-Range: a strong ETag, else Last-Modified (RFC 9110 §13.1.5), or null.</summary>
    private static string? Validator(HttpResponseMessage response) =>
        response.Headers.ETag is { IsWeak: false } etag ? etag.ToString()
        : response.Content.Headers.LastModified is { } modified ? modified.ToString("R", CultureInfo.InvariantCulture)
        : null;

    /// <summary>The file beside the partial download that keeps its validator, so a resume in a later run sends If-Range too.</summary>
    private static string ValidatorFile(string part) => part + ".validator";

    private async Task<HttpResponseMessage> SendFollowingRedirectsAsync(DownloadRequest request, long offset, string? validator, CancellationToken cancellation)
    {
        var url = request.Url;
        for (int hop = 0; hop < 10; hop++)
        {
            using var message = new HttpRequestMessage(HttpMethod.Get, url);
            if (offset > 0)
            {
                message.Headers.Range = new System.Net.Http.Headers.RangeHeaderValue(offset, null);
                // The server sends the rest only if the file is still the version the partial file began, else all of it.
                if (validator is not null) message.Headers.TryAddWithoutValidation("If-Range", validator);
            }
            authorize?.Invoke(message);
            var response = await HttpWaits.SendAsync(http, message, Settings, cancellation, request.Url);
            if ((int)response.StatusCode is >= 300 and < 400 && response.Headers.Location is { } location)
            {
                var next = location.IsAbsoluteUri ? location : new Uri(url, location);
                response.Dispose();
                CheckRedirect(request, url, next);
                url = next;
                continue;
            }
            return response;
        }
        throw new StageFailedException($"{request.Label}: too many redirects from {request.Url}");
    }

    /// <summary>
    /// A redirect is followed only to another http(s) URL, and from https only to https: a <c>file:</c> or <c>ftp:</c> target
    /// ended in a NotSupportedException, and a step down to plain HTTP would let anyone on the way swap the file (curl
    /// refuses redirects to <c>file:</c> too). The target is named without its query, which may carry a signature.
    /// </summary>
    private static void CheckRedirect(DownloadRequest request, Uri from, Uri to)
    {
        string target = to.Scheme is "http" or "https" ? to.GetLeftPart(UriPartial.Path) : to.Scheme + ":";
        if (to.Scheme is not ("http" or "https"))
            throw new StageFailedException($"{request.Label}: {request.Url} redirects to a {target} URL; only http(s) redirects are followed");
        if (from.Scheme == "https" && to.Scheme == "http")
            throw new StageFailedException($"{request.Label}: {request.Url} redirects from HTTPS to plain HTTP ({target}), where the file could be changed on " +
                "the way; refused. If you trust that server, give its http:// URL yourself, with a sha256 to check the file");
    }

    /// <summary>
    /// How long to wait before the next attempt: the backoff, or what the server asked for with Retry-After
    /// (429, 503), but never more than <see cref="DownloadSettings.MaxRetryWait"/>.
    /// </summary>
    private (TimeSpan Wait, string Why) RetryWait(Exception failure, TimeSpan backoff)
    {
        if (failure is not RetryLaterException { RetryAfter: { } asked }) return (backoff, "");
        if (asked <= Settings.MaxRetryWait) return (asked, $"; the server asks to wait {Seconds(asked)} s (Retry-After)");
        return (Settings.MaxRetryWait, $"; the server asks to wait {Seconds(asked)} s (Retry-After), more than {DownloadSettings.MaxRetryWaitKey} = {Seconds(Settings.MaxRetryWait)} s");
    }

    private static Exception Failure(DownloadRequest request, HttpResponseMessage response) => (int)response.StatusCode switch
    {
        404 => new StageFailedException($"{request.Label}: {request.Url} returned 404 Not Found; check the URL in datasets.json"),
        401 or 403 => new StageFailedException(AccessRefused(request, response)),
        >= 500 or 429 or 408 => new RetryLaterException(response.StatusCode, HttpWaits.RetryAfter(response)),
        _ => new StageFailedException($"{request.Label}: {request.Url} returned {(int)response.StatusCode} {response.StatusCode}"),
    };

    /// <summary>
    /// What a 401 or 403 means and what to do. From the Hub (a <c>/resolve/</c> URL refused by the Hub's own host) it is a
    /// private or gated repository, or a missing one (the Hub answers 401 for all three to a request without a token): the
    /// message names the model page, where a gated model's conditions are accepted, and says whether a token was sent.
    /// The Hub's own explanation (<c>X-Error-Message</c>, which huggingface_hub shows too) is quoted.
    /// </summary>
    private static string AccessRefused(DownloadRequest request, HttpResponseMessage response)
    {
        int status = (int)response.StatusCode;
        string said = HttpWaits.ServerSays(response);
        string url = request.Url.AbsoluteUri;
        int resolve = url.IndexOf("/resolve/", StringComparison.Ordinal);
        var refusedBy = response.RequestMessage?.RequestUri ?? request.Url;
        if (resolve < 0 || refusedBy.Authority != request.Url.Authority)
            return $"{request.Label}: access to {request.Url} was refused ({status}{(refusedBy.Authority != request.Url.Authority ? $" by {refusedBy.Authority}" : "")}){said}";
        string page = url[..resolve];
        bool sentToken = response.RequestMessage?.Headers.Authorization is not null;
        return $"{request.Label}: the Hub refused {request.Url} ({status}){said}. " + (sentToken
            ? $"The token sent (HF_TOKEN, else the token file of `hf auth login`) has no access: for a gated repository, accept its conditions at {page} " +
              "while logged in as the token's owner (a fine-grained token also needs read access to public gated repositories); for a private one, use a token of an account that can read it"
            : $"No token was sent: the repository is private or gated (or does not exist). Set HF_TOKEN (or log in with `hf auth login`) to a read token of an account " +
              $"with access; for a gated repository, first accept its conditions at {page}");
    }


    /// <summary>A status that says "try again" (429, 408, 5xx), with the wait the server asked for.</summary>
    private sealed class RetryLaterException(HttpStatusCode status, TimeSpan? retryAfter)
        : HttpRequestException($"HTTP {(int)status} {status}", null, status)
    {
        public TimeSpan? RetryAfter { get; } = retryAfter;
    }

    private static bool IsTransient(Exception e, CancellationToken cancellation) =>
        !cancellation.IsCancellationRequested && e is IOException or HttpRequestException or TimeoutException;

    private static string Describe(Exception e) => e is HttpRequestException { StatusCode: { } status }
        ? $"HTTP {(int)status}"
        : e.Message;

    private static long Length(string path) => File.Exists(path) ? new FileInfo(path).Length : 0;

    private static string Seconds(TimeSpan span) => span.TotalSeconds.ToString("0.#", CultureInfo.InvariantCulture);
}
