using System.Net;
using System.Net.Sockets;

namespace SdPipeline.Tests.Support;

/// <summary>
/// A port on 127.0.0.1 where a new TCP connection neither completes nor is refused: the listener never accepts,
/// and one connection fills its accept queue (backlog 0), so Linux drops further SYNs and a client's connect
/// waits, as it does for a host that has vanished from the network.
/// </summary>
public sealed class FullAcceptQueue : IDisposable
{
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly Socket _filler = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);

    public FullAcceptQueue()
    {
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(0);
        _filler.Connect(_listener.LocalEndPoint!);
    }

    public Uri BaseUri => new($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndPoint!).Port}/");

    public void Dispose()
    {
        _filler.Dispose();
        _listener.Dispose();
    }
}
