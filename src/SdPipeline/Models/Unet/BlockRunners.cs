namespace SdPipeline.Models.Unet;

/// <summary>The default <see cref="BlockRunner"/>.</summary>
public static class BlockRunners
{
    /// <summary>Calls the block as it is.</summary>
    public static BlockRunner Direct { get; } = static (block, hiddenStates, condition) => block.call(hiddenStates, condition);
}
