using SdPipeline.Models.Unet;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Unet;

/// <summary>Sampling (no autograd) computes the GEGLU in the projection's own memory; training keeps autograd's form.</summary>
public sealed class GEGLUTests
{
    [Test]
    public void Forward_Should_GiveTheSameValuesWithAndWithoutAutograd_And_LeaveItsInputAlone()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(3);
        var geglu = new GEGLU(24, 40);
        var input = torch.randn(2, 9, 24);
        var inputBefore = input.clone();

        var trained = geglu.call(input);
        Tensor sampled;
        using (torch.no_grad()) sampled = geglu.call(input);

        Assert.That(trained.requires_grad, Is.True, "with autograd the product keeps its graph");
        Assert.That(sampled.shape, Is.EqualTo(new long[] { 2, 9, 40 }));
        Assert.That(sampled.eq(trained).all().item<bool>(), Is.True, "the same operations on the same values, bit for bit");
        Assert.That(input.eq(inputBefore).all().item<bool>(), Is.True);

        // The in-place result still feeds a linear layer as a plain tensor would (it is a strided half of the projection).
        var output = nn.Linear(40, 24);
        using (torch.no_grad())
            Assert.That(output.call(sampled).allclose(output.call(trained.detach().contiguous()), rtol: 0, atol: 1e-6), Is.True);
    }
}
