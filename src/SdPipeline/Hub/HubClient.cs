using System.Net;
using System.Net.Http.Headers;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.Downloads;
using SdPipeline.Pipeline;

namespace SdPipeline.Hub;

/// <summary>
/// The few Hugging Face Hub API calls the tool needs: resolve a revision, list files, build file URLs. Every
/// call is bounded by <paramref name="waits"/> (a connection, then each answer) and ends on the caller's
/// cancellation, so planning against a Hub that accepts and never answers says so instead of hanging.
/// </summary>
public sealed class HubClient(HttpClient http, HubSettings settings, DownloadSettings? waits = null)
{
    private readonly DownloadSettings _waits = waits ?? new DownloadSettings();

    /// <summary>The settings in use.</summary>
    public HubSettings Settings => settings;

    /// <summary>The commit a branch, tag or commit id resolves to.</summary>
    public async Task<string> ResolveRevisionAsync(HubRepoKind kind, string repo, string revision, CancellationToken cancellation)
    {
        var json = await GetJsonAsync(Api(kind, repo, $"revision/{Uri.EscapeDataString(revision)}"), $"{Describe(kind, repo)}@{revision}", Page(kind, repo), cancellation);
        string? sha = json["sha"]?.Type == JTokenType.String ? json.Value<string>("sha") : null;
        if (sha is null) throw new StageFailedException($"{Describe(kind, repo)}@{revision}: the Hub's answer has no commit sha");
        // The sha names a folder of the cache: anything but a commit id could point outside it.
        return HubPaths.IsCommit(sha) ? sha
            : throw Refused($"{Describe(kind, repo)}@{revision}: the Hub answered commit '{Shorten(sha)}', which is not a 40-hex-digit commit id; " +
                $"check HF_ENDPOINT ({settings.Endpoint})");
    }

    /// <summary>Every file of the repository at <paramref name="commit"/>, following the API's pages.</summary>
    public async Task<IReadOnlyList<HubFile>> ListFilesAsync(HubRepoKind kind, string repo, string commit, CancellationToken cancellation)
    {
        var files = new List<HubFile>();
        Uri? next = Api(kind, repo, $"tree/{Uri.EscapeDataString(commit)}?recursive=true&expand=false");
        while (next is not null)
        {
            using var response = await SendAsync(next, $"{Describe(kind, repo)}@{commit}", Page(kind, repo), cancellation);
            var entries = Parse<JArray>(await ReadAsync(response, next, $"{Describe(kind, repo)}@{commit}", cancellation), next, $"{Describe(kind, repo)}@{commit}");
            foreach (var entry in entries.OfType<JObject>().Where(e => e.Value<string>("type") == "file"))
                files.Add(ReadFile(entry, $"{Describe(kind, repo)}@{commit}"));
            next = NextPage(response, $"{Describe(kind, repo)}@{commit}");
        }
        return files;
    }

    /// <summary>
    /// One entry of a tree listing, checked: its path becomes a file under the cache and its hashes name blobs,
    /// so a path escaping the repository or a hash that is not one is refused, naming the entry.
    /// </summary>
    private static HubFile ReadFile(JObject entry, string what)
    {
        string? path = entry["path"]?.Type == JTokenType.String ? entry.Value<string>("path") : null;
        if (HubPaths.RelativePathProblem(path) is { } problem)
            throw Refused($"{what}: the Hub lists a file at '{Shorten(path ?? "")}', which is not a path inside the repository ({problem})");
        string? lfs = entry["lfs"] is JObject lfsObject ? lfsObject.Value<string>("oid") : null;
        string? oid = entry["oid"]?.Type == JTokenType.String ? entry.Value<string>("oid") : null;
        if (lfs is not null && !HubPaths.IsSha256(lfs))
            throw Refused($"{what}: the Hub gives {path} the LFS oid '{Shorten(lfs)}', which is not a SHA-256");
        long size = entry["size"]?.Type == JTokenType.Integer ? entry.Value<long>("size") : -1;
        if (size < 0) throw Refused($"{what}: the Hub gives {path} no size (or a negative one)");
        // The git oid names a small file's blob in the model cache (HubSnapshotDownloader checks it there).
        return new HubFile(path!, size, lfs, oid ?? "");
    }

    /// <summary>
    /// An answer refused as unsafe: bad data from the server (exit 1), which callers that turn unreachable or
    /// missing repositories into configuration errors tell apart by <see cref="IsRefusedAnswer"/>.
    /// </summary>
    public static StageFailedException Refused(string message) => new(message, new InvalidDataException(message));

    /// <summary>Whether <paramref name="error"/> is a refused answer (see <see cref="Refused"/>).</summary>
    public static bool IsRefusedAnswer(StageFailedException error) => error.InnerException is InvalidDataException;

    private static string Shorten(string text) => text.Length <= 80 ? text : text[..80] + "…";

    /// <summary>The download URL of one file at a commit.</summary>
    public Uri FileUrl(HubRepoKind kind, string repo, string commit, string path) =>
        new(settings.Endpoint, $"{(kind == HubRepoKind.Dataset ? "datasets/" : "")}{repo}/resolve/{Uri.EscapeDataString(commit)}/{string.Join('/', path.Split('/').Select(Uri.EscapeDataString))}");

    /// <summary>Whether <paramref name="url"/> is on the Hub endpoint (and may carry the token).</summary>
    public bool IsHubUrl(Uri url) => url.Host == settings.Endpoint.Host && url.Port == settings.Endpoint.Port && url.Scheme == settings.Endpoint.Scheme;

    /// <summary>Adds the token to <paramref name="request"/> when it goes to the Hub itself.</summary>
    public void Authorize(HttpRequestMessage request)
    {
        if (settings.Token is not null && request.RequestUri is not null && IsHubUrl(request.RequestUri))
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", settings.Token);
    }

    private Uri Api(HubRepoKind kind, string repo, string rest) =>
        new(settings.Endpoint, $"api/{(kind == HubRepoKind.Dataset ? "datasets" : "models")}/{repo}/{rest}");

    /// <summary>The repository's page on the Hub, where a gated repository's conditions are accepted.</summary>
    private Uri Page(HubRepoKind kind, string repo) => new(settings.Endpoint, $"{(kind == HubRepoKind.Dataset ? "datasets/" : "")}{repo}");

    private static string Describe(HubRepoKind kind, string repo) => kind == HubRepoKind.Dataset ? $"dataset {repo}" : $"model {repo}";

    private async Task<JObject> GetJsonAsync(Uri url, string what, Uri page, CancellationToken cancellation)
    {
        using var response = await SendAsync(url, what, page, cancellation);
        return Parse<JObject>(await ReadAsync(response, url, what, cancellation), url, what);
    }

    /// <summary>
    /// An API answer as JSON of the expected form. Anything else is refused as bad data, naming the URL and HF_ENDPOINT: a
    /// proxy's or a network login page's HTML answering for the Hub was a JsonReaderException with a stack trace.
    /// </summary>
    private T Parse<T>(string text, Uri url, string what) where T : JToken
    {
        try
        {
            return JToken.Parse(text) as T ?? throw new JsonReaderException($"expected a JSON {(typeof(T) == typeof(JArray) ? "array" : "object")}");
        }
        catch (JsonReaderException e)
        {
            throw Refused($"{what}: {url} did not answer with the Hub's JSON ({e.Message}); check HF_ENDPOINT ({settings.Endpoint}): " +
                "a proxy or a network's login page may be answering in the Hub's place");
        }
    }

    private async Task<string> ReadAsync(HttpResponseMessage response, Uri url, string what, CancellationToken cancellation)
    {
        try
        {
            return await HttpWaits.ReadStringAsync(response, url, _waits, cancellation);
        }
        catch (Exception e) when (e is TimeoutException or HttpRequestException or IOException)
        {
            throw Unreachable(what, e);
        }
    }

    private StageFailedException Unreachable(string what, Exception e) =>
        new($"{what}: cannot reach the Hub at {settings.Endpoint} ({e.Message}); set HF_ENDPOINT for a mirror or HF_HUB_OFFLINE=1 to use the cache", e);

    private const int MaxRedirects = 5;

    private async Task<HttpResponseMessage> SendAsync(Uri url, string what, Uri page, CancellationToken cancellation)
    {
        if (settings.Offline)
            throw new StageFailedException($"{what}: HF_HUB_OFFLINE is set, and this needs the Hub ({url})");
        HttpResponseMessage response;
        var delay = _waits.FirstRetryDelay;
        int redirects = 0;
        for (int attempt = 1; ; attempt++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            Authorize(request);
            try
            {
                response = await HttpWaits.SendAsync(http, request, _waits, cancellation);
            }
            catch (Exception e) when (e is HttpRequestException or TimeoutException)
            {
                throw Unreachable(what, e);
            }
            // A renamed repository: the Hub redirects its old name's API paths to the new one, which huggingface_hub's
            // requests follow. Only on the Hub's own scheme and host, where the token may go.
            if ((int)response.StatusCode is 301 or 302 or 307 or 308 && response.Headers.Location is { } location)
            {
                var next = new Uri(url, location);
                response.Dispose();
                if (next.Scheme != url.Scheme || next.Authority != url.Authority || ++redirects > MaxRedirects)
                    throw Refused($"{what}: the Hub redirected {url.GetLeftPart(UriPartial.Path)} to {next.GetLeftPart(UriPartial.Path)}, " +
                        $"{(redirects > MaxRedirects ? $"more than {MaxRedirects} times" : "off its own host")}; check the repository name ({page}) and HF_ENDPOINT ({settings.Endpoint})");
                url = next;
                attempt = 0;
                continue;
            }
            // Rate limited (429) or briefly unavailable: wait as the Hub asks (Retry-After, at most download.max_retry_wait_seconds)
            // or back off, as file downloads do; huggingface_hub's _request_wrapper retries 429 too.
            if ((int)response.StatusCode is not (429 or 500 or 502 or 503 or 504) || attempt >= _waits.Attempts) break;
            var wait = HttpWaits.RetryAfter(response) is { } asked ? TimeSpan.FromTicks(Math.Min(asked.Ticks, _waits.MaxRetryWait.Ticks)) : delay;
            response.Dispose();
            await Task.Delay(wait, cancellation);
            delay = DownloadSettings.NextDelay(delay);
        }
        if (response.IsSuccessStatusCode) return response;
        var status = response.StatusCode;
        // The Hub's own explanation, as huggingface_hub's hf_raise_for_status quotes it.
        string said = HttpWaits.ServerSays(response);
        response.Dispose();
        throw new StageFailedException(status switch
        {
            // Without a token the Hub answers 401 for a missing repository as for a private or gated one (huggingface_hub reports it as RepositoryNotFound).
            HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden when settings.Token is null =>
                $"{what}: the Hub refused access ({(int)status}) to {url}{said}. No token was sent: check the name ({page}); for a private or gated repository set HF_TOKEN " +
                $"(or log in with `hf auth login`) to a read token of an account with access, and for a gated one first accept its conditions at {page}",
            HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden =>
                $"{what}: the Hub refused access ({(int)status}) to {url}{said}. The token sent (HF_TOKEN, else the token file of `hf auth login`) has no access: " +
                $"check that it is valid and can read the repository; for a gated one, accept its conditions at {page} while logged in as the token's owner",
            HttpStatusCode.NotFound => $"{what}: not found on the Hub ({url} returned 404); check the repository name and revision",
            _ when (int)status is 429 or 500 or 502 or 503 or 504 =>
                $"{what}: the Hub answered {(int)status} {status} for {url}{said}, {_waits.Attempts} times ({DownloadSettings.AttemptsKey}){((int)status == 429 ? "; a token (HF_TOKEN) raises the Hub's rate limits" : "")}",
            _ => $"{what}: the Hub answered {(int)status} {status} for {url}{said}",
        });
    }

    private static Uri? NextPage(HttpResponseMessage response, string what)
    {
        if (!response.Headers.TryGetValues("Link", out var links)) return null;
        foreach (string link in links.SelectMany(l => l.Split(',')))
        {
            var parts = link.Split(';');
            if (parts.Length > 1 && parts[1].Contains("rel=\"next\"", StringComparison.Ordinal))
            {
                string target = parts[0].Trim().Trim('<', '>');
                return Uri.TryCreate(target, UriKind.Absolute, out var page) && page.Scheme is "http" or "https" ? page
                    : throw Refused($"{what}: the Hub's next page of the file list is '{Shorten(target)}', which is not an http(s) URL");
            }
        }
        return null;
    }
}
