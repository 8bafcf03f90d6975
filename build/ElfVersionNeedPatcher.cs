// Marks one symbol-version requirement of an ELF shared library as weak (VER_FLG_WEAK), so the dynamic
// loader accepts a C++ runtime that lacks that version. Why: TorchSharp 0.107's libLibTorchSharp.so asks
// for GLIBCXX_3.4.32 for a single link-time marker (std::ios_base_library_init) that nothing calls, and
// Debian 12 ships GLIBCXX_3.4.30. See docs/architecture.md, "Native libraries".
//
// This file is compiled twice: by MSBuild's RoslynCodeTaskFactory as the PatchElfVersionNeed task
// (build/Native.targets), and by the test project (with ELF_PATCHER_NO_MSBUILD) to test the patcher.
using System;
using System.IO;
using System.Text;

public static class ElfVersionNeedPatcher
{
    private const ushort VerFlagWeak = 0x2;
    private const uint ShtGnuVerneed = 0x6ffffffe;

    /// <summary>Outcome of <see cref="MarkWeak"/>.</summary>
    public enum Result { Patched, AlreadyWeak, VersionNotRequired }

    /// <summary>Sets VER_FLG_WEAK on every vernaux entry named <paramref name="version"/>.</summary>
    public static Result MarkWeak(string path, string version)
    {
        byte[] elf = File.ReadAllBytes(path);
        Result result = Scan(elf, version, patch: true, path);
        if (result == Result.Patched)
        {
            // Write beside and rename, so an interrupted build never leaves a half-written library and a
            // process that has the old file mapped keeps its inode. netstandard2.0 (the task factory's
            // target) has no File.Move overwrite; Replace is a rename on one volume.
            DateTime copiedAt = File.GetLastWriteTimeUtc(path);
            string temp = path + ".patching";
            File.WriteAllBytes(temp, elf);
            File.Replace(temp, path, destinationBackupFileName: null);
            // Same size and timestamp as the package's file: MSBuild's incremental copy then leaves the
            // patched copy alone instead of overwriting it in place on the next build.
            File.SetLastWriteTimeUtc(path, copiedAt);
        }
        return result;
    }

    /// <summary>Reports whether <paramref name="version"/> is required, and whether weakly.</summary>
    public static Result Inspect(string path, string version) =>
        Scan(File.ReadAllBytes(path), version, patch: false, path);

    private static Result Scan(byte[] elf, string version, bool patch, string path)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            throw new InvalidDataException($"{path}: not an ELF file");
        if (elf[4] != 2 || elf[5] != 1)
            throw new InvalidDataException($"{path}: only little-endian 64-bit ELF is supported");

        ulong sectionHeaders = BitConverter.ToUInt64(elf, 0x28);
        int sectionHeaderSize = BitConverter.ToUInt16(elf, 0x3A);
        int sectionCount = BitConverter.ToUInt16(elf, 0x3C);

        Result result = Result.VersionNotRequired;
        for (int i = 0; i < sectionCount; i++)
        {
            int header = checked((int)sectionHeaders + i * sectionHeaderSize);
            if (BitConverter.ToUInt32(elf, header + 4) != ShtGnuVerneed)
                continue;
            int offset = checked((int)BitConverter.ToUInt64(elf, header + 0x18));
            int linkedStrings = (int)BitConverter.ToUInt32(elf, header + 0x28);
            int entryCount = (int)BitConverter.ToUInt32(elf, header + 0x2C); // sh_info = number of Verneed entries
            int stringsHeader = checked((int)sectionHeaders + linkedStrings * sectionHeaderSize);
            int strings = checked((int)BitConverter.ToUInt64(elf, stringsHeader + 0x18));

            int need = offset;
            for (int n = 0; n < entryCount; n++)
            {
                int auxCount = BitConverter.ToUInt16(elf, need + 2);
                int aux = need + (int)BitConverter.ToUInt32(elf, need + 8);
                for (int a = 0; a < auxCount; a++)
                {
                    string name = ReadString(elf, strings + (int)BitConverter.ToUInt32(elf, aux + 8));
                    if (name == version)
                    {
                        ushort flags = BitConverter.ToUInt16(elf, aux + 4);
                        if ((flags & VerFlagWeak) != 0)
                        {
                            if (result == Result.VersionNotRequired) result = Result.AlreadyWeak;
                        }
                        else
                        {
                            if (patch)
                            {
                                ushort weak = (ushort)(flags | VerFlagWeak);
                                elf[aux + 4] = (byte)(weak & 0xff);
                                elf[aux + 5] = (byte)(weak >> 8);
                            }
                            result = Result.Patched;
                        }
                    }
                    aux += (int)BitConverter.ToUInt32(elf, aux + 12);
                }
                uint next = BitConverter.ToUInt32(elf, need + 12);
                if (next == 0) break;
                need += (int)next;
            }
        }
        return result;
    }

    private static string ReadString(byte[] elf, int start)
    {
        int end = Array.IndexOf(elf, (byte)0, start);
        return Encoding.ASCII.GetString(elf, start, end - start);
    }
}

#if !ELF_PATCHER_NO_MSBUILD
/// <summary>MSBuild task: marks <see cref="Version"/> weak in each of <see cref="Files"/> that exists.</summary>
public sealed class PatchElfVersionNeed : Microsoft.Build.Utilities.Task
{
    [Microsoft.Build.Framework.Required]
    public Microsoft.Build.Framework.ITaskItem[] Files { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();

    [Microsoft.Build.Framework.Required]
    public string Version { get; set; } = "";

    public override bool Execute()
    {
        foreach (var item in Files)
        {
            string path = item.GetMetadata("FullPath");
            if (!File.Exists(path)) continue;
            var result = ElfVersionNeedPatcher.MarkWeak(path, Version);
            if (result == ElfVersionNeedPatcher.Result.Patched)
                Log.LogMessage(Microsoft.Build.Framework.MessageImportance.High, $"Marked {Version} weak in {path}");
        }
        return !Log.HasLoggedErrors;
    }
}
#endif
