using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Build;

/// <summary>
/// <c>.ci/test-prerequisites.sh</c>, which the Test target runs first: what it does when a tool is missing, decided
/// on a PATH of stand-ins (an <c>id</c> that says who runs it, an <c>apt-get</c> and a <c>sudo</c> that record their
/// calls), so nothing is installed or uninstalled on this machine.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")] // a bash script that installs Debian packages
public sealed class TestPrerequisitesTests
{
    private static readonly string[] s_tools = ["chromium", "shellcheck", "node", "npm"];

    private static string Script => Path.Combine(RepoPaths.Root, ".ci", "test-prerequisites.sh");

    /// <summary>A folder to be the whole PATH: <paramref name="tools"/> as stand-ins, and the commands the script calls.</summary>
    private static string StandIns(TempFolder temp, int uid, IEnumerable<string> tools, bool aptGet, bool sudo, bool aptGetFails = false)
    {
        string bin = Directory.CreateDirectory(temp.File("bin")).FullName;
        void Write(string name, string body)
        {
            string path = Path.Combine(bin, name);
            File.WriteAllText(path, "#!/bin/bash\n" + body + "\n");
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        foreach (string tool in tools) Write(tool, "exit 0");
        Write("id", $"echo {uid}");
        File.CreateSymbolicLink(Path.Combine(bin, "env"), "/usr/bin/env");
        string log = temp.File("calls.log");
        if (sudo) Write("sudo", $"echo \"sudo $*\" >> {log}\nif [ \"$1\" = -n ]; then shift; fi\n\"$@\"");
        if (aptGet)
        {
            // `install` makes each package's command appear, as the real one does (nodejs provides node).
            string install = aptGetFails ? "exit 100" : $"for p in \"$@\"; do case $p in -*) ;; nodejs) /usr/bin/touch {bin}/node; /bin/chmod +x {bin}/node ;; *) /usr/bin/touch {bin}/$p; /bin/chmod +x {bin}/$p ;; esac; done";
            Write("apt-get", $"echo \"apt-get $*\" >> {log}\nif [ \"$1\" = install ]; then shift; {install}; fi");
        }
        return bin;
    }

    private static ProcessResult Run(string bin, IDictionary<string, string>? extra = null)
    {
        var environment = new Dictionary<string, string> { ["PATH"] = bin, ["SDPIPE_CHROMIUM"] = "" };
        foreach (var (key, value) in extra ?? new Dictionary<string, string>()) environment[key] = value;
        return CliRunner.Run("/bin/bash", [Script], RepoPaths.Root, environment, TimeSpan.FromMinutes(1));
    }

    private static string Calls(TempFolder temp) => File.Exists(temp.File("calls.log")) ? File.ReadAllText(temp.File("calls.log")) : "";

    [Test]
    public void Script_Should_DoNothing_When_EveryToolIsThere()
    {
        // Given every tool on PATH, and an apt-get that would record a call
        using var temp = new TempFolder();
        string bin = StandIns(temp, uid: 0, s_tools, aptGet: true, sudo: false);

        // When the script runs
        var result = Run(bin);

        // Then it succeeds quietly and installs nothing
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(result.All, Is.Empty);
        Assert.That(Calls(temp), Is.Empty);
    }

    [Test]
    public void Script_Should_StopWithTheCommandToRun_When_ToolsAreMissingAndItCannotBecomeRoot()
    {
        // Given a user (uid 1000) without sudo, and no Chromium or shellcheck
        using var temp = new TempFolder();
        string bin = StandIns(temp, uid: 1000, ["node", "npm"], aptGet: true, sudo: false);

        // When the script runs
        var result = Run(bin);

        // Then it fails at once with the exact command, and apt-get was never called
        Assert.That(result.ExitCode, Is.EqualTo(1));
        Assert.That(result.Error, Does.Contain("the tests need chromium shellcheck").And.Contain("  sudo apt-get update && sudo apt-get install -y chromium shellcheck"));
        Assert.That(Calls(temp), Is.Empty);
    }

    [Test]
    public void Script_Should_InstallTheMissingPackages_When_RunAsRoot()
    {
        // Given root, and only npm there
        using var temp = new TempFolder();
        string bin = StandIns(temp, uid: 0, ["npm"], aptGet: true, sudo: false);

        // When the script runs
        var result = Run(bin);

        // Then apt-get installs the Debian packages of the missing tools (node's is nodejs), and it succeeds
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(Calls(temp).Split('\n', StringSplitOptions.RemoveEmptyEntries),
            Is.EqualTo(new[] { "apt-get update -qq", "apt-get install -y -qq chromium shellcheck nodejs" }));
        Assert.That(result.Output, Does.Contain("installing the tests' prerequisites with apt-get: chromium shellcheck nodejs"));
    }

    [Test]
    public void Script_Should_InstallThroughSudo_When_SudoNeedsNoPassword()
    {
        // Given a user with passwordless sudo, and no shellcheck
        using var temp = new TempFolder();
        string bin = StandIns(temp, uid: 1000, ["chromium", "node", "npm"], aptGet: true, sudo: true);

        // When the script runs
        var result = Run(bin);

        // Then apt-get runs through sudo
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(Calls(temp), Does.Contain("sudo apt-get update -qq").And.Contain("sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck"));
    }

    [Test]
    public void Script_Should_StopWithTheCommandToRun_When_AptGetFails()
    {
        // Given root, no shellcheck, and an apt-get that cannot install (no network, unknown package)
        using var temp = new TempFolder();
        string bin = StandIns(temp, uid: 0, ["chromium", "node", "npm"], aptGet: true, sudo: false, aptGetFails: true);

        // When the script runs
        var result = Run(bin);

        // Then it fails and says what to run to see apt-get's own message
        Assert.That(result.ExitCode, Is.EqualTo(1));
        Assert.That(result.Error, Does.Contain("apt-get could not install shellcheck").And.Contain("  apt-get update && apt-get install -y shellcheck"));
    }

    [Test]
    public void Script_Should_NameThePackages_When_ThereIsNoAptGet()
    {
        // Given a system without apt-get and without Chromium
        using var temp = new TempFolder();
        string bin = StandIns(temp, uid: 0, ["shellcheck", "node", "npm"], aptGet: false, sudo: false);

        // When the script runs
        var result = Run(bin);

        // Then it fails, naming what to install
        Assert.That(result.ExitCode, Is.EqualTo(1));
        Assert.That(result.Error, Does.Contain("the tests need chromium").And.Contain("no apt-get"));
    }

    [Test]
    public void Script_Should_AcceptAnotherChromium_When_SdpipeChromiumPointsAtIt()
    {
        // Given no chromium package but SDPIPE_CHROMIUM naming an executable (as the browser test accepts)
        using var temp = new TempFolder();
        string bin = StandIns(temp, uid: 1000, ["shellcheck", "node", "npm", "my-chromium"], aptGet: true, sudo: false);

        // When the script runs
        var result = Run(bin, new Dictionary<string, string> { ["SDPIPE_CHROMIUM"] = Path.Combine(bin, "my-chromium") });

        // Then nothing is missing
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(Calls(temp), Is.Empty);
    }

    [Test]
    public void TestTarget_Should_RunThePrerequisitesScript_BeforeTheTests()
    {
        // Given the Cake script
        string cake = File.ReadAllText(Path.Combine(RepoPaths.Root, "build", "build.cake"));

        // Then the Test task calls the script before dotnet test, and .ci/run uses the same script
        string test = cake[cake.IndexOf("Task(\"Test\")", StringComparison.Ordinal)..];
        test = test[..test.IndexOf("Task(", 5, StringComparison.Ordinal)];
        Assert.That(test.IndexOf("EnsureTestPrerequisites();", StringComparison.Ordinal), Is.GreaterThan(0).And.LessThan(test.IndexOf("DotNetTest(", StringComparison.Ordinal)));
        Assert.That(cake, Does.Contain("Arguments = \".ci/test-prerequisites.sh\""));
        Assert.That(File.ReadAllText(Path.Combine(RepoPaths.Root, ".ci", "run")), Does.Contain("bash .ci/test-prerequisites.sh"));
    }
}
