using System.Globalization;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;

namespace SdPipeline.Models.Shared;

/// <summary>
/// The slot a loaded ELF shared library jumps through when it calls one of its dynamic symbols (its PLT entry's slot in
/// the global offset table, R_X86_64_JUMP_SLOT), found from the library's file and this process's memory map. Writing a
/// function's address there sends that library's own calls to it; callers elsewhere are unaffected.
/// </summary>
internal static unsafe class PltSlot
{
    private const uint LoadSegment = 1, RelroSegment = 0x6474e552, RelaSection = 4;
    private const uint JumpSlot = 7; // R_X86_64_JUMP_SLOT

    /// <summary>Where a slot is and what its value may be before anything is written there.</summary>
    /// <param name="Address">The slot in this process's memory.</param>
    /// <param name="LazyStubs">The library's PLT stubs, [start, end): an unresolved slot points into them.</param>
    /// <param name="ReadOnly">Whether the slot lies in the library's RELRO segment, which the loader made read-only.</param>
    public readonly record struct Location(nint Address, (long Start, long End) LazyStubs, bool ReadOnly);

    /// <summary>
    /// The slot through which the loaded library whose file is named <paramref name="fileName"/> calls
    /// <paramref name="symbol"/>; null, with the reason in <paramref name="failure"/>, when the library is not loaded,
    /// its file is not x86-64 ELF, or it has no such slot.
    /// </summary>
    public static Location? Find(string fileName, string symbol, out string? failure)
    {
        failure = null;
        try
        {
            if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux) || RuntimeInformation.ProcessArchitecture != Architecture.X64)
                return Fail("not x86-64 Linux", out failure);
            if (Mapping(fileName) is not var (path, start)) return Fail($"{fileName} is not mapped in this process", out failure);
            using var file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            using var view = file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            return Read(view, start, symbol, path, out failure);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return Fail(e.Message, out failure);
        }
    }

    /// <summary>Writes <paramref name="function"/> into <paramref name="slot"/> (atomically), lifting RELRO's protection for the write.</summary>
    public static bool TryWrite(Location slot, nint function)
    {
        const int Read = 1, Write = 2;
        nint page = (nint)(slot.Address & ~(Environment.SystemPageSize - 1L));
        if (slot.ReadOnly && Protect(page, Environment.SystemPageSize, Read | Write) != 0) return false;
        Interlocked.Exchange(ref *(nint*)slot.Address, function);
        if (slot.ReadOnly) Protect(page, Environment.SystemPageSize, Read);
        return true;
    }

    private static Location? Fail(string reason, out string? failure)
    {
        failure = reason;
        return null;
    }

    // The library's file and the address its first byte is mapped at (the mapping of file offset 0).
    private static (string Path, long Start)? Mapping(string fileName)
    {
        foreach (string line in File.ReadLines("/proc/self/maps"))
        {
            string[] fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 6 || !fields[5].EndsWith("/" + fileName, StringComparison.Ordinal) || long.Parse(fields[2], NumberStyles.HexNumber) != 0)
                continue;
            return (fields[5].Trim(), long.Parse(fields[0].Split('-')[0], NumberStyles.HexNumber));
        }
        return null;
    }

    private static Location? Read(MemoryMappedViewAccessor elf, long mappedAt, string symbol, string path, out string? failure)
    {
        failure = null;
        if (elf.ReadUInt32(0) != 0x464c457f || elf.ReadByte(4) != 2 || elf.ReadByte(5) != 1 || elf.ReadUInt16(0x12) != 62)
            return Fail($"{path} is not a little-endian x86-64 ELF file", out failure);
        long programHeaders = elf.ReadInt64(0x20), sections = elf.ReadInt64(0x28);
        int programHeaderSize = elf.ReadUInt16(0x36), programHeaderCount = elf.ReadUInt16(0x38);
        int sectionSize = elf.ReadUInt16(0x3A), sectionCount = elf.ReadUInt16(0x3C), names = elf.ReadUInt16(0x3E);

        long? firstLoad = null;
        (long Start, long End) relro = (0, 0);
        for (int i = 0; i < programHeaderCount; i++)
        {
            long header = programHeaders + (long)i * programHeaderSize;
            uint type = elf.ReadUInt32(header);
            if (type == LoadSegment && firstLoad is null)
            {
                if (elf.ReadInt64(header + 8) != 0) return Fail($"{path}: its first loaded segment does not start the file", out failure);
                firstLoad = elf.ReadInt64(header + 16);
            }
            else if (type == RelroSegment)
            {
                long start = elf.ReadInt64(header + 16);
                relro = (start, start + elf.ReadInt64(header + 40));
            }
        }
        if (firstLoad is not { } loadAddress) return Fail($"{path} has no loaded segment", out failure);
        long bias = mappedAt - (loadAddress & ~0xfffL);

        long sectionNames = elf.ReadInt64(sections + (long)names * sectionSize + 0x18);
        (long Start, long End) stubs = (0, 0);
        long relocations = 0, relocationsSize = 0, symbols = 0, strings = 0;
        for (int i = 0; i < sectionCount; i++)
        {
            long header = sections + (long)i * sectionSize;
            string name = CString(elf, sectionNames + elf.ReadUInt32(header));
            if (name == ".plt")
            {
                long address = elf.ReadInt64(header + 0x10);
                stubs = (bias + address, bias + address + elf.ReadInt64(header + 0x20));
            }
            else if (name == ".rela.plt" && elf.ReadUInt32(header + 4) == RelaSection)
            {
                relocations = elf.ReadInt64(header + 0x18);
                relocationsSize = elf.ReadInt64(header + 0x20);
                long symbolTable = sections + (long)elf.ReadUInt32(header + 0x28) * sectionSize;
                symbols = elf.ReadInt64(symbolTable + 0x18);
                strings = elf.ReadInt64(sections + (long)elf.ReadUInt32(symbolTable + 0x28) * sectionSize + 0x18);
            }
        }
        if (relocationsSize == 0) return Fail($"{path} has no .rela.plt section", out failure);

        for (long entry = relocations; entry < relocations + relocationsSize; entry += 24)
        {
            long info = elf.ReadInt64(entry + 8);
            if ((uint)info != JumpSlot) continue;
            long symbolEntry = symbols + (info >>> 32) * 24;
            if (!NameIs(elf, strings + elf.ReadUInt32(symbolEntry), symbol)) continue;
            long offset = elf.ReadInt64(entry);
            return new Location((nint)(bias + offset), stubs, offset >= relro.Start && offset < relro.End);
        }
        return Fail($"{path} has no PLT slot for {symbol}", out failure);
    }

    private static bool NameIs(MemoryMappedViewAccessor elf, long at, string name)
    {
        for (int i = 0; i < name.Length; i++)
            if (elf.ReadByte(at + i) != name[i]) return false;
        return elf.ReadByte(at + name.Length) == 0;
    }

    private static string CString(MemoryMappedViewAccessor elf, long at)
    {
        var text = new System.Text.StringBuilder();
        for (byte b; (b = elf.ReadByte(at)) != 0; at++) text.Append((char)b);
        return text.ToString();
    }

    [DllImport("libc", EntryPoint = "mprotect", SetLastError = true)]
    private static extern int Protect(nint address, nint length, int protection);
}
