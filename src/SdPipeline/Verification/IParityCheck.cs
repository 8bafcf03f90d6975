namespace SdPipeline.Verification;

/// <summary>The check of one kind of parity fixture.</summary>
internal interface IParityCheck
{
    /// <summary>The model components the check reads (loaded before it runs, outside its dispose scope).</summary>
    IReadOnlyList<string> Components { get; }

    /// <summary>Compares what the model computes with the fixture's reference, adding one or more rows.</summary>
    void Run(ParityFixture fixture, ModelComponents model, ParityRows rows);
}
