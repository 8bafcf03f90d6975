using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>
/// Gives a module built on the <c>meta</c> device real but uninitialised storage (PyTorch's <c>to_empty</c>,
/// which TorchSharp lacks). Loading a checkpoint this way skips the random initialisation that every weight
/// would otherwise get and immediately lose: about 9 s for the SD 1.5 UNet on two cores.
/// </summary>
public static class MetaModules
{
    /// <summary>
    /// Replaces every parameter of <paramref name="module"/> by an uninitialised tensor of the same shape and dtype
    /// on <paramref name="device"/>. Only for modules whose every parameter is then overwritten (a strict load).
    /// </summary>
    /// <exception cref="NotSupportedException">A parameterised layer type this helper does not know, or buffers (none of the ported models has any).</exception>
    public static void ToEmpty(nn.Module module, Device device)
    {
        using var _ = torch.no_grad();
        foreach (var (name, child) in module.named_modules().Prepend((string.Empty, module)))
        {
            switch (child)
            {
                case Linear linear:
                    linear.weight = Empty(linear.weight, device)!;
                    linear.bias = Empty(linear.bias, device);
                    break;
                case Convolution convolution:
                    convolution.weight = Empty(convolution.weight, device)!;
                    convolution.bias = Empty(convolution.bias, device);
                    break;
                case GroupNorm norm:
                    norm.weight = Empty(norm.weight, device)!;
                    norm.bias = Empty(norm.bias, device);
                    break;
                case LayerNorm norm:
                    norm.weight = Empty(norm.weight, device)!;
                    norm.bias = Empty(norm.bias, device);
                    break;
                default:
                    if (child.named_parameters(recurse: false).Any())
                        throw new NotSupportedException($"{name} ({child.GetType().Name}) holds parameters that {nameof(MetaModules)} cannot re-create");
                    break;
            }
            if (child.named_buffers(recurse: false).Any())
                throw new NotSupportedException($"{name} ({child.GetType().Name}) holds buffers that {nameof(MetaModules)} cannot re-create");
        }
    }

    private static Parameter? Empty(Parameter? parameter, Device device) =>
        parameter is null ? null : new Parameter(torch.empty(parameter.shape, parameter.dtype, device), parameter.requires_grad);
}
