using SdPipeline.Hub;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Hub;

/// <summary>The Hub settings come from the environment and files huggingface_hub reads, so a logged-in user is logged in for sdpipe too.</summary>
[NonParallelizable] // sets HF_* environment variables
public sealed class HubSettingsTests
{
    private static readonly string[] Variables = ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "HF_ENDPOINT",
        "XDG_CACHE_HOME", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_OFFLINE", "SDPIPE_TEST_ROOT"];
    private TempFolder _temp = null!;
    private Dictionary<string, string?> _saved = null!;

    [SetUp]
    public void SetUp()
    {
        _temp = new TempFolder();
        _saved = Variables.ToDictionary(v => v, Environment.GetEnvironmentVariable);
        foreach (string name in Variables) Environment.SetEnvironmentVariable(name, null);
        Environment.SetEnvironmentVariable("HF_HOME", _temp.File("hf-home"));
    }

    [TearDown]
    public void TearDown()
    {
        foreach (var (name, value) in _saved) Environment.SetEnvironmentVariable(name, value);
        _temp.Dispose();
    }

    [Test]
    public void Cache_Should_BeWhereHuggingfaceHubPutsIt_ForEachWayOfNamingIt()
    {
        // constants.py: HF_HOME defaults to $XDG_CACHE_HOME/huggingface; HF_HUB_CACHE, then the legacy HUGGINGFACE_HUB_CACHE;
        // each path through expanduser and expandvars
        Environment.SetEnvironmentVariable("HF_HOME", null);
        Environment.SetEnvironmentVariable("XDG_CACHE_HOME", _temp.File("xdg"));
        Assert.That(HubSettings.FromEnvironment().HubCache, Is.EqualTo(Path.Combine(_temp.File("xdg"), "huggingface", "hub")));

        Environment.SetEnvironmentVariable("HUGGINGFACE_HUB_CACHE", _temp.File("legacy"));
        Assert.That(HubSettings.FromEnvironment().HubCache, Is.EqualTo(_temp.File("legacy")));

        Environment.SetEnvironmentVariable("SDPIPE_TEST_ROOT", _temp.File("root"));
        Environment.SetEnvironmentVariable("HF_HUB_CACHE", "${SDPIPE_TEST_ROOT}/hub");
        Assert.That(HubSettings.FromEnvironment().HubCache, Is.EqualTo(_temp.File("root") + "/hub"));

        Environment.SetEnvironmentVariable("HF_HUB_CACHE", "~/hf-hub");
        Assert.That(HubSettings.FromEnvironment().HubCache, Is.EqualTo(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile) + "/hf-hub"));
    }

    [TestCase("HF_HUB_OFFLINE", "On", true)]
    [TestCase("HF_HUB_OFFLINE", "True", true)]
    [TestCase("HF_HUB_OFFLINE", "0", false)]
    [TestCase("TRANSFORMERS_OFFLINE", "1", true)]
    public void Offline_Should_ReadTheValues_huggingface_hub_Reads(string name, string value, bool offline)
    {
        Environment.SetEnvironmentVariable(name, value);

        Assert.That(HubSettings.FromEnvironment().Offline, Is.EqualTo(offline));
    }

    [Test]
    public void Token_Should_ComeFromTheLoginFile_When_HF_TOKENIsNotSet()
    {
        // Given a user who logged in with `hf auth login` (the token file under HF_HOME, newline and all)
        Directory.CreateDirectory(_temp.File("hf-home"));
        File.WriteAllText(_temp.File("hf-home/token"), "hf_fromfile\n");

        Assert.That(HubSettings.FromEnvironment().Token, Is.EqualTo("hf_fromfile"));

        // HF_TOKEN_PATH names another file; HF_TOKEN comes before any file
        File.WriteAllText(_temp.File("elsewhere"), "hf_elsewhere");
        Environment.SetEnvironmentVariable("HF_TOKEN_PATH", _temp.File("elsewhere"));
        Assert.That(HubSettings.FromEnvironment().Token, Is.EqualTo("hf_elsewhere"));
        Environment.SetEnvironmentVariable("HF_TOKEN", "hf_fromenv");
        Assert.That(HubSettings.FromEnvironment().Token, Is.EqualTo("hf_fromenv"));
    }

    [Test]
    public void Token_Should_LoseItsLineBreaksAndSpaces_As_huggingface_hub_CleansIt()
    {
        // A secret pasted with its trailing newline: sent as is, every request would fail on an invalid header value
        Environment.SetEnvironmentVariable("HF_TOKEN", " hf_pasted\r\n");
        Assert.That(HubSettings.FromEnvironment().Token, Is.EqualTo("hf_pasted"));

        Environment.SetEnvironmentVariable("HF_TOKEN", "\n");
        Assert.That(HubSettings.FromEnvironment().Token, Is.Null, "nothing left: no token, and no file either");
    }
}
