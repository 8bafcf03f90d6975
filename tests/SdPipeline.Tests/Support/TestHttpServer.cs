using System.Net;
using System.Net.Sockets;
using System.Text;

namespace SdPipeline.Tests.Support;

/// <summary>
/// A small HTTP/1.1 server on 127.0.0.1 for download tests: serves byte arrays by path, honours Range
/// requests, and can misbehave on purpose (drop the connection part-way, answer with a status).
/// Written on a raw socket because a dropped connection mid-body is exactly what we need to produce.
/// </summary>
public sealed class TestHttpServer : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Dictionary<string, Route> _routes = new(StringComparer.Ordinal);
    private readonly List<string> _requests = [];

    /// <summary>A served path: its body, and how to misbehave.</summary>
    public sealed class Route
    {
        /// <summary>The file; a test may replace it between requests (a file that changed on the server).</summary>
        public required byte[] Body { get; set; }
        public string ContentType { get; init; } = "application/octet-stream";
        public int Status { get; init; } = 200;
        /// <summary>On the first request only, send this many body bytes and then close the connection.</summary>
        public long? DropAfterBytes { get; set; }
        /// <summary>On every request, send at most this many body bytes and then close the connection.</summary>
        public long? DropEveryAfterBytes { get; init; }
        /// <summary>On the first request only, send the headers and this many body bytes, then send nothing more (the connection stays open).</summary>
        public long? StallAfterBytes { get; set; }
        /// <summary>Read the request and never answer (the connection stays open).</summary>
        public bool NeverAnswer { get; init; }
        /// <summary>Answer the first N requests with <see cref="FailStatus"/> (and <see cref="Headers"/>, e.g. Retry-After).</summary>
        public int FailFirst { get; set; }
        public int FailStatus { get; init; } = 503;
        /// <summary>Send this many body bytes, then wait for <see cref="Gate"/> before the rest.</summary>
        public long? GateAfterBytes { get; init; }
        public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        /// <summary>Sent as ETag; a Range request whose If-Range names another version gets the whole body (RFC 9110 §13.1.5).</summary>
        public string? ETag { get; set; }
        /// <summary>Sent as Last-Modified; compared with If-Range as ETag is.</summary>
        public string? LastModified { get; set; }
        /// <summary>Honour Range but not If-Range (a server that resumes whatever version it now has).</summary>
        public bool IgnoreIfRange { get; init; }
        /// <summary>Runs after each answer (a test uses it to change the file between attempts).</summary>
        public Action? Served { get; set; }
        public bool IgnoreRange { get; init; }
        /// <summary>Answers a Range request with 206 but the whole body from byte 0 (a misbehaving server or proxy).</summary>
        public bool ResumeFromZero { get; init; }
        public Dictionary<string, string> Headers { get; init; } = [];
    }

    public TestHttpServer()
    {
        _listener.Start();
        _ = Task.Run(AcceptLoop);
    }

    public Uri BaseUri => new($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/");

    /// <summary>Request lines seen so far ("GET /path Range=bytes=10-").</summary>
    public IReadOnlyList<string> Requests { get { lock (_requests) return _requests.ToList(); } }

    public Route Serve(string path, byte[] body, string contentType = "application/octet-stream")
    {
        var route = new Route { Body = body, ContentType = contentType };
        lock (_routes) _routes[path] = route;
        return route;
    }

    public void Serve(string path, Route route)
    {
        lock (_routes) _routes[path] = route;
    }

    public void ServeJson(string path, string json) => Serve(path, Encoding.UTF8.GetBytes(json), "application/json");

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception) { return; }
            _ = Task.Run(() => Handle(client));
        }
    }

    private async Task Handle(TcpClient client)
    {
        using var _ = client;
        var stream = client.GetStream();
        var reader = new StreamReader(stream, Encoding.ASCII, false, 1, leaveOpen: true);
        while (true)
        {
            string? requestLine = await reader.ReadLineAsync();
            if (string.IsNullOrEmpty(requestLine)) return;
            var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            string? line;
            while (!string.IsNullOrEmpty(line = await reader.ReadLineAsync()))
            {
                int colon = line.IndexOf(':');
                headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
            }
            string pathAndQuery = requestLine.Split(' ')[1];
            string path = Uri.UnescapeDataString(pathAndQuery.Split('?')[0]);
            lock (_requests) _requests.Add($"GET {pathAndQuery}" + (headers.TryGetValue("Range", out var r) ? $" Range={r}" : "")
                + (headers.TryGetValue("If-Range", out var ifRange) ? $" If-Range={ifRange}" : "")
                + (headers.TryGetValue("Authorization", out var auth) ? $" Authorization={auth}" : ""));

            Route? route;
            lock (_routes) _routes.TryGetValue(path, out route);
            if (route is null)
            {
                await Write(stream, 404, "Not Found", "text/plain", Encoding.ASCII.GetBytes("not found"), []);
                continue;
            }
            if (route.NeverAnswer)
            {
                await Hold();
                return;
            }
            bool fail;
            lock (route) { fail = route.FailFirst > 0; if (fail) route.FailFirst--; }
            if (route.Status != 200 || fail)
            {
                await Write(stream, fail ? route.FailStatus : route.Status, "Status", "text/plain", Encoding.ASCII.GetBytes("status"), route.Headers);
                continue;
            }

            long start = 0;
            int status = 200;
            var extra = new Dictionary<string, string>(route.Headers);
            if (route.ETag is { } etag) extra["ETag"] = etag;
            if (route.LastModified is { } modified) extra["Last-Modified"] = modified;
            bool sameVersion = route.IgnoreIfRange || !headers.TryGetValue("If-Range", out var condition) || condition == route.ETag || condition == route.LastModified;
            if (!route.IgnoreRange && sameVersion && headers.TryGetValue("Range", out var range) && range.StartsWith("bytes="))
            {
                start = route.ResumeFromZero ? 0 : long.Parse(range["bytes=".Length..].Split('-')[0]);
                if (start >= route.Body.Length)
                {
                    await Write(stream, 416, "Range Not Satisfiable", "text/plain", [], new() { ["Content-Range"] = $"bytes */{route.Body.Length}" });
                    continue;
                }
                status = 206;
                extra["Content-Range"] = $"bytes {start}-{route.Body.Length - 1}/{route.Body.Length}";
            }
            var body = route.Body.AsSpan((int)start).ToArray();
            long? drop, stall;
            lock (route) { drop = route.DropAfterBytes ?? route.DropEveryAfterBytes; route.DropAfterBytes = null; stall = route.StallAfterBytes; route.StallAfterBytes = null; }
            string reason = status == 206 ? "Partial Content" : "OK";
            if (drop is { } n && n < body.Length)
            {
                await WriteHead(stream, status, reason, route.ContentType, body.Length, extra);
                await stream.WriteAsync(body.AsMemory(0, (int)n));
                await stream.FlushAsync();
                client.Client.Shutdown(SocketShutdown.Both); // the connection "drops" mid-body
                route.Served?.Invoke();
                return;
            }
            if (stall is { } m && m < body.Length)
            {
                await WriteHead(stream, status, reason, route.ContentType, body.Length, extra);
                await stream.WriteAsync(body.AsMemory(0, (int)m));
                await stream.FlushAsync();
                await Hold();
                return;
            }
            if (route.GateAfterBytes is { } g && g < body.Length)
            {
                await WriteHead(stream, status, reason, route.ContentType, body.Length, extra);
                await stream.WriteAsync(body.AsMemory(0, (int)g));
                await stream.FlushAsync();
                await route.Gate.Task.WaitAsync(_stop.Token);
                await stream.WriteAsync(body.AsMemory((int)g));
                await stream.FlushAsync();
            }
            else await Write(stream, status, reason, route.ContentType, body, extra);
            route.Served?.Invoke();
        }
    }

    /// <summary>Keeps a connection open without a word until the server is disposed.</summary>
    private async Task Hold()
    {
        try { await Task.Delay(Timeout.Infinite, _stop.Token); }
        catch (OperationCanceledException) { }
    }

    private static async Task WriteHead(NetworkStream stream, int status, string reason, string contentType, long length, Dictionary<string, string> headers)
    {
        var head = new StringBuilder($"HTTP/1.1 {status} {reason}\r\nContent-Type: {contentType}\r\nContent-Length: {length}\r\nAccept-Ranges: bytes\r\n");
        foreach (var (name, value) in headers) head.Append($"{name}: {value}\r\n");
        head.Append("\r\n");
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head.ToString()));
    }

    private static async Task Write(NetworkStream stream, int status, string reason, string contentType, byte[] body, Dictionary<string, string> headers)
    {
        await WriteHead(stream, status, reason, contentType, body.Length, headers);
        await stream.WriteAsync(body);
        await stream.FlushAsync();
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
    }
}
