using TorchSharp;
using TorchSharp.Modules;

namespace SdPipeline.Training.Precision;

/// <summary>
/// Prepares a model for <see cref="Autocast"/> regions from outside: every <c>nn.Linear</c>, <c>nn.Conv2d</c>,
/// <c>nn.GroupNorm</c> and <c>nn.LayerNorm</c> in it is replaced by its <see cref="AutocastLayer"/>, which takes over
/// the parameters under the same keys. The models themselves stay plain TorchSharp layers that know nothing of
/// precision; outside a region the replaced model computes bit for bit what the plain one did.
/// </summary>
/// <remarks>
/// Apply it right after loading, before anything holds the layers or their parameters (an optimizer, LoRA adapters,
/// forward hooks): those would keep referring to the replaced layers. Attention needs no replacement: its query,
/// key and value come out of replaced linear layers in the region's dtype, so scaled-dot-product attention runs in
/// it too, as torch.autocast would cast it.
/// </remarks>
public static class AutocastLayers
{
    /// <summary>Replaces the layers of <paramref name="model"/> (and of its children); returns how many it replaced.</summary>
    public static int Apply(torch.nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        int replaced = 0;
        foreach (var (_, parent) in model.named_modules().Prepend((string.Empty, model)).ToList())
        {
            foreach (var (name, child) in parent.named_children().ToList())
            {
                AutocastLayer? layer = child switch
                {
                    Linear linear => new AutocastLinear(linear),
                    Conv2d conv => new AutocastConv2d(conv),
                    GroupNorm norm => new AutocastGroupNorm(norm),
                    LayerNorm norm => new AutocastLayerNorm(norm),
                    _ => null,
                };
                if (layer is null) continue;
                ChildModules.Replace(parent, name, layer);
                child.Dispose();
                replaced++;
            }
        }
        return replaced;
    }
}
