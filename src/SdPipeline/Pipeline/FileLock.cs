namespace SdPipeline.Pipeline;

/// <summary>
/// An exclusive lock between processes on a lock file. .NET takes an advisory <c>flock</c> for
/// <see cref="FileShare.None"/> on Unix (and a share lock on Windows), which the OS releases when the
/// holder dies, so a killed run never leaves a stale lock behind.
/// </summary>
public sealed class FileLock : IDisposable
{
    private readonly FileStream _stream;

    private FileLock(FileStream stream) => _stream = stream;

    /// <summary>Waits until the lock is free and takes it; <paramref name="onWait"/> runs once if it has to wait.</summary>
    public static FileLock Acquire(string path, TimeSpan timeout, Action? onWait = null, CancellationToken cancellation = default)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var deadline = DateTime.UtcNow + timeout;
        bool told = false;
        while (true)
        {
            try
            {
                return new FileLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            }
            catch (IOException e) when (!IsHeldByAnother(e))
            {
                // Disk full, read-only file system, a name too long: waiting would not help, so say what it is.
                throw new StageFailedException($"cannot create or lock '{path}': {e.Message} (is the disk full or read-only?)", e);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                if (!told) { onWait?.Invoke(); told = true; }
                cancellation.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(200));
                cancellation.ThrowIfCancellationRequested();
            }
            catch (IOException e)
            {
                throw new TimeoutException($"could not lock '{path}' within {timeout.TotalSeconds:0} s: {e.Message}", e);
            }
        }
    }

    /// <summary>
    /// Whether opening failed because another handle holds the lock: on Unix .NET reports flock's EWOULDBLOCK
    /// with the errno as HResult (11 on Linux, 35 on macOS and the BSDs); on Windows a sharing or lock violation.
    /// </summary>
    private static bool IsHeldByAnother(IOException error)
    {
        if (OperatingSystem.IsWindows()) return (error.HResult & 0xFFFF) is 32 or 33;
        return error.HResult == (OperatingSystem.IsLinux() ? 11 : 35);
    }

    /// <inheritdoc />
    public void Dispose() => _stream.Dispose();
}
