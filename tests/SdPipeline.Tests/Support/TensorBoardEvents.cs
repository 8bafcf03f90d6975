using System.Buffers.Binary;

namespace SdPipeline.Tests.Support;

/// <summary>Reads TensorBoard event files record by record (TFRecord framing: length, masked CRC, payload, masked CRC) as TensorBoard does.</summary>
public static class TensorBoardEvents
{
    /// <summary>Every event of every <c>events.out.tfevents.*</c> file in <paramref name="folder"/>, checking each record's CRCs.</summary>
    public static IReadOnlyList<Tensorboard.Event> Read(string folder)
    {
        var events = new List<Tensorboard.Event>();
        foreach (string file in Directory.GetFiles(folder, "events.out.tfevents.*").Order(StringComparer.Ordinal))
        {
            byte[] bytes = File.ReadAllBytes(file);
            int offset = 0;
            while (offset < bytes.Length)
            {
                var header = bytes.AsSpan(offset, 8);
                long length = BinaryPrimitives.ReadInt64LittleEndian(header);
                Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(offset + 8, 4)), Is.EqualTo(MaskedCrc(header)), $"{file}: header CRC at {offset}");
                var payload = bytes.AsSpan(offset + 12, (int)length);
                Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(offset + 12 + (int)length, 4)), Is.EqualTo(MaskedCrc(payload)), $"{file}: payload CRC at {offset}");
                events.Add(Tensorboard.Event.Parser.ParseFrom(payload.ToArray()));
                offset += 16 + (int)length;
            }
        }
        return events;
    }

    private static uint MaskedCrc(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data) crc = System.Numerics.BitOperations.Crc32C(crc, b);
        crc ^= 0xFFFFFFFF;
        return ((crc >> 15) | (crc << 17)) + 0xa282ead8U;
    }
}
