using SdPipeline.Pipeline;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Pipeline;

/// <summary>The input hashes a plan trusts by size and modification time, and what <c>plan --verify</c> does to them.</summary>
public sealed class FileHashCacheTests
{
    [Test]
    public void RehashOnce_Should_SeeAnEditThatKeptSizeAndTime_AndKeepOtherFilesRemembered()
    {
        // Given two remembered files, one then rewritten at the same size and given back its modification time
        using var temp = new TempFolder();
        string edited = temp.File("a.txt"), other = temp.File("b.txt");
        File.WriteAllText(edited, "red");
        File.WriteAllText(other, "blue");
        var cache = new FileHashCache(temp.File("hashes.json"));
        string before = cache.Hash(edited);
        cache.Hash(other);
        cache.Save();
        var written = File.GetLastWriteTimeUtc(edited);
        File.WriteAllText(edited, "RED");
        File.SetLastWriteTimeUtc(edited, written);

        // Then a plain lookup trusts the remembered hash (the documented cost of not reading every file each plan)
        var reopened = new FileHashCache(temp.File("hashes.json"));
        Assert.That(reopened.Hash(edited), Is.EqualTo(before));

        // and after RehashOnce the file is read again, and its new hash saved beside the other file's
        reopened.RehashOnce();
        string after = reopened.Hash(edited);
        Assert.That(after, Is.EqualTo(FileHashCache.HashFile(edited)).And.Not.EqualTo(before));
        reopened.Save();
        var third = new FileHashCache(temp.File("hashes.json"));
        Assert.That(third.Hash(edited), Is.EqualTo(after));
        Assert.That(File.ReadAllText(temp.File("hashes.json")), Does.Contain("b.txt"), "plan --verify of one config keeps the others' hashes");
    }

    [Test]
    public void Hash_Should_SeeALinkedFileRewritten_WhileTheLinkStaysAsItWas()
    {
        // Given a weight file reached through a link (a user's model folder linking shared weights), hashed and remembered
        using var temp = new TempFolder();
        string target = temp.File("weights.bin"), link = temp.File("linked.bin");
        File.WriteAllText(target, "red");
        File.CreateSymbolicLink(link, target);
        var cache = new FileHashCache(temp.File("hashes.json"));
        string before = cache.Hash(link);
        cache.Save();

        // When the file behind the link is rewritten at the same size (the link itself untouched)
        File.WriteAllText(target, "RED");
        File.SetLastWriteTimeUtc(target, File.GetLastWriteTimeUtc(target).AddSeconds(5));

        // Then the remembered hash is not trusted: it is the file's size and time that are compared, not the link's
        Assert.That(new FileHashCache(temp.File("hashes.json")).Hash(link), Is.Not.EqualTo(before).And.EqualTo(FileHashCache.HashFile(target)));
    }
}
