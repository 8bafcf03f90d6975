using SdPipeline.Files;
using SdPipeline.Pipeline;
using SdPipeline.Tests.Support;
using SdPipeline.Training;

namespace SdPipeline.Tests.Pipeline;

/// <summary>What a killed process, a full disk or a long run leaves behind is read correctly afterwards.</summary>
public sealed class CrashSafetyTests
{
    private static void Checkpoint(string checkpoints, string name, bool complete = true)
    {
        Directory.CreateDirectory(Path.Combine(checkpoints, name));
        if (complete) File.WriteAllText(Path.Combine(checkpoints, name, "training_state.json"), "{}");
    }

    [Test]
    public void Latest_Should_OrderCheckpointsByStep_When_StepsPassAMillion()
    {
        using var temp = new TempFolder();
        Checkpoint(temp.Path, "checkpoint-999999");
        Checkpoint(temp.Path, "checkpoint-1000000");
        Checkpoint(temp.Path, "checkpoint-1000500", complete: false);

        Assert.That(Path.GetFileName(TrainingCheckpoint.Latest(temp.Path)), Is.EqualTo("checkpoint-1000000"));
        Assert.That(TrainingCheckpoint.ByStep(temp.Path).Select(Path.GetFileName), Is.EqualTo(new[] { "checkpoint-999999", "checkpoint-1000000", "checkpoint-1000500" }));
    }

    [Test]
    public void RemoveLeftovers_Should_RemoveTemporaryCheckpointsOfKilledProcesses_Only()
    {
        using var temp = new TempFolder();
        Checkpoint(temp.Path, "checkpoint-000100");
        Checkpoint(temp.Path, ".tmp-checkpoint-000200-4242", complete: false);
        File.WriteAllBytes(Path.Combine(temp.Path, ".tmp-checkpoint-000200-4242", "training_state.safetensors"), new byte[1024]);

        TrainingCheckpoint.RemoveLeftovers(temp.Path);

        Assert.That(Directory.GetDirectories(temp.Path).Select(Path.GetFileName), Is.EqualTo(new[] { "checkpoint-000100" }));
    }

    [Test]
    public void Acquire_Should_FailAtOnceNamingThePath_When_TheLockFileCannotBeCreated()
    {
        // A name longer than the file system allows: an IOException that is not "someone else holds the lock"
        using var temp = new TempFolder();
        string path = temp.File(new string('x', 300) + ".lock");

        var attempt = Task.Run(() => FileLock.Acquire(path, TimeSpan.FromHours(24)).Dispose());

        // Before, this waited the whole 24 hours, reading the error as "another process is building".
        Exception? error = null;
        bool finished;
        try { finished = attempt.Wait(TimeSpan.FromSeconds(60)); }
        catch (AggregateException e) { finished = true; error = e.InnerException; }
        Assert.That(finished, Is.True, "still waiting for a lock nobody holds");
        Assert.That(error, Is.TypeOf<StageFailedException>());
        Assert.That(error!.Message, Does.Contain("cannot create or lock").And.Contain("xxxx"));
    }

    [Test]
    public void Acquire_Should_StillWait_When_AnotherHandleHoldsTheLock()
    {
        using var temp = new TempFolder();
        using var held = FileLock.Acquire(temp.File("a.lock"), TimeSpan.Zero);

        Assert.Throws<TimeoutException>(() => FileLock.Acquire(temp.File("a.lock"), TimeSpan.FromMilliseconds(300)).Dispose());
    }

    [Test]
    public void AtomicWrite_Should_LeaveNoTemporaryFile()
    {
        using var temp = new TempFolder();

        AtomicFile.WriteAllText(temp.File("state.json"), "{}");

        Assert.That(Directory.GetFiles(temp.Path).Select(Path.GetFileName), Is.EqualTo(new[] { "state.json" }));
    }
}
