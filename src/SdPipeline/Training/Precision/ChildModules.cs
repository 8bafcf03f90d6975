using System.Reflection;
using TorchSharp;
using TorchSharp.Utils;

namespace SdPipeline.Training.Precision;

/// <summary>
/// Replaces a child module of a TorchSharp module in place, PyTorch's <c>setattr(parent, name, new)</c> (what PEFT's
/// <c>_replace_module</c> does). TorchSharp has no public way to do it: a child lives both in a field the parent's
/// <c>forward</c> reads and in the registry <c>named_children</c>, <c>state_dict</c> and <c>to</c> read, and
/// <c>register_module</c> leaves an existing entry alone. Both are set here, the registry entry in place so that
/// parameter order (and so every saved file) is unchanged.
/// </summary>
internal static class ChildModules
{
    private static readonly FieldInfo Registry = typeof(torch.nn.Module).GetField("_internal_submodules", BindingFlags.Instance | BindingFlags.NonPublic)
        ?? throw new MissingFieldException("TorchSharp's Module no longer keeps its children in _internal_submodules: ChildModules needs updating for this TorchSharp version");

    /// <summary>Puts <paramref name="replacement"/> where <paramref name="parent"/> holds its child <paramref name="name"/>.</summary>
    /// <exception cref="InvalidOperationException">The parent keeps the child in a field whose type cannot hold the replacement, or where it cannot be found.</exception>
    public static void Replace(torch.nn.Module parent, string name, torch.nn.Module replacement)
    {
        var children = (OrderedDict<string, torch.nn.Module>)Registry.GetValue(parent)!;
        if (!children.TryGetValue(name, out var current))
            throw new InvalidOperationException($"{parent.GetName()} has no child named {name}");

        if (IsModuleList(parent.GetType()))
            parent.GetType().GetProperty("Item")!.SetValue(parent, replacement, [int.Parse(name, System.Globalization.CultureInfo.InvariantCulture)]);
        else
        {
            var field = Fields(parent.GetType()).FirstOrDefault(f => ReferenceEquals(f.GetValue(parent), current))
                ?? throw new InvalidOperationException($"{parent.GetType().Name}.{name} is not held in a field, so it cannot be replaced");
            if (!field.FieldType.IsInstanceOfType(replacement))
                throw new InvalidOperationException($"{parent.GetType().Name}.{field.Name} is declared as {field.FieldType.Name}, which cannot hold a {replacement.GetType().Name}: " +
                    "declare model layers by their call signature (nn.Module<Tensor, Tensor>) so that training can wrap them");
            field.SetValue(parent, replacement);
        }
        children[name] = replacement;
    }

    private static bool IsModuleList(Type type)
    {
        for (var t = type; t is not null; t = t.BaseType)
            if (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(TorchSharp.Modules.ModuleList<>)) return true;
        return false;
    }

    private static IEnumerable<FieldInfo> Fields(Type type)
    {
        for (var t = type; t is not null && t != typeof(torch.nn.Module); t = t.BaseType)
            foreach (var field in t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                if (typeof(torch.nn.Module).IsAssignableFrom(field.FieldType)) yield return field;
    }
}
