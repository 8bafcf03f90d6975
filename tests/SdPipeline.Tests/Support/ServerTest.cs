namespace SdPipeline.Tests.Support;

/// <summary>A test class whose tests each get a fresh temporary folder and an HTTP server on 127.0.0.1, removed after it.</summary>
public abstract class ServerTest
{
    protected TempFolder Temp { get; private set; } = null!;

    protected TestHttpServer Server { get; private set; } = null!;

    [SetUp]
    public void StartServer()
    {
        Temp = new TempFolder();
        Server = new TestHttpServer();
    }

    [TearDown]
    public void StopServer()
    {
        Server.Dispose();
        Temp.Dispose();
    }
}
