using SdPipeline.Data;
using SdPipeline.Pipeline;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Data;

/// <summary><c>metadata.csv</c> captions: RFC 4180 as the Hugging Face imagefolder reads it, and a row that would shift or merge captions named, not guessed at.</summary>
public sealed class CaptionFilesTests
{
    private static CaptionFiles Read(TempFolder temp, string csv)
    {
        File.WriteAllText(temp.File("metadata.csv"), csv);
        return CaptionFiles.Read(temp.Path, "text");
    }

    [Test]
    public void Read_Should_TakeQuotedCommasQuotesAndLineBreaks_AndSkipBlankLines()
    {
        using var temp = new TempFolder();
        var captions = Read(temp, "file_name,text\r\na.png,plain\n\nb.png,\"a cat, on a sofa\"\nc.png,\"say \"\"hi\"\"\nthen go\"\nd.png,a 12\" record\n");

        Assert.That(captions.Find(temp.File("a.png"))?.Caption, Is.EqualTo("plain"));
        Assert.That(captions.Find(temp.File("d.png"))?.Caption, Is.EqualTo("a 12\" record"), "a quote inside an unquoted caption is text, as pandas reads it");
        Assert.That(captions.Find(temp.File("b.png"))?.Caption, Is.EqualTo("a cat, on a sofa"));
        Assert.That(captions.Find(temp.File("c.png"))?.Caption, Is.EqualTo("say \"hi\"\nthen go"));
    }

    [TestCase("file_name,text\na.png,a cat, on a sofa\n", "(line 2) has 3 fields but 2 were expected")]
    [TestCase("file_name,text\na.png,\"unclosed\nb.png,next\nc.png,\"last\"\n", "line 2: text after the closing quote")]
    [TestCase("file_name,text\na.png,ok\nb.png,\"never closed\n", "line 3: a quoted field that is never closed")]
    public void Read_Should_NameTheRow_When_QuotingIsBroken(string csv, string expected)
    {
        using var temp = new TempFolder();

        var error = Assert.Throws<StageFailedException>(() => Read(temp, csv))!;

        Assert.That(error.Message, Does.Contain("metadata.csv").And.Contain(expected).And.Contain("Quote a caption that holds commas"));
    }

    [TestCase("a red thing\n", "a red thing")]
    [TestCase("\uFEFF  a red thing  \r\n", "a red thing")]
    [TestCase("1girl, red dress\r\na girl in a red dress, standing\r\n", "1girl, red dress")]
    [TestCase("first\rsecond", "first")]
    [TestCase("", "")]
    public void Find_Should_TakeASidecarsFirstLine_Trimmed_AsKohya(string text, string expected)
    {
        // Given a kohya-style sidecar (tags on the first line, and more lines sd-scripts does not read without --enable_wildcard)
        using var temp = new TempFolder();
        File.WriteAllText(temp.File("a.txt"), text, new System.Text.UTF8Encoding(false));

        // When its image's caption is looked up
        var found = CaptionFiles.Read(temp.Path, "text").Find(temp.File("a.png"));

        // Then it is the first line, as sd-scripts' read_caption takes it
        Assert.That(found?.Caption, Is.EqualTo(expected));
        Assert.That(found?.From, Is.EqualTo("a.txt"));
    }

    [Test]
    public void Find_Should_ReadAUtf16Sidecar_When_ItHasAByteOrderMark()
    {
        // Given a sidecar Windows Notepad saved as "Unicode" (UTF-16 LE with its mark)
        using var temp = new TempFolder();
        File.WriteAllText(temp.File("a.txt"), "une tasse de café\r\n", new System.Text.UnicodeEncoding(bigEndian: false, byteOrderMark: true));

        Assert.That(CaptionFiles.Read(temp.Path, "text").Find(temp.File("a.png"))?.Caption, Is.EqualTo("une tasse de café"));
    }

    [Test]
    public void Find_Should_NameTheSidecar_When_ItIsNotUtf8()
    {
        // Given a sidecar saved in Windows-1252: "café" ends in the lone byte 0xE9
        using var temp = new TempFolder();
        File.WriteAllBytes(temp.File("a.txt"), [.. "a caf"u8, 0xE9]);

        // When its caption is looked up
        var error = Assert.Throws<StageFailedException>(() => CaptionFiles.Read(temp.Path, "text").Find(temp.File("a.png")))!;

        // Then it stops naming the file and the fix, as kohya's read_caption does, instead of training "a caf"
        Assert.That(error.Message, Does.Contain("a.txt").And.Contain("not UTF-8").And.Contain("save the file as UTF-8"));
    }

    [Test]
    public void Read_Should_NameTheCsv_When_ItIsNotUtf8()
    {
        using var temp = new TempFolder();
        File.WriteAllBytes(temp.File("metadata.csv"), [.. "file_name,text\na.png,a caf"u8, 0xE9, (byte)'\n']);

        var error = Assert.Throws<StageFailedException>(() => CaptionFiles.Read(temp.Path, "text"))!;

        Assert.That(error.Message, Does.Contain("metadata.csv").And.Contain("not UTF-8"));
    }

    [Test]
    public void Read_Should_FindTheFileNameColumn_When_TheCsvStartsWithAByteOrderMark()
    {
        // Excel's "CSV UTF-8" starts the file with a mark; the header is still file_name,text
        using var temp = new TempFolder();
        File.WriteAllText(temp.File("metadata.csv"), "file_name,text\r\na.png,un café\r\n", new System.Text.UTF8Encoding(true));

        Assert.That(CaptionFiles.Read(temp.Path, "text").Find(temp.File("a.png"))?.Caption, Is.EqualTo("un café"));
    }
}
