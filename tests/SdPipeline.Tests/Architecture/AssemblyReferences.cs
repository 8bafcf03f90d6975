using System.Reflection;
using System.Reflection.Emit;

namespace SdPipeline.Tests.Architecture;

/// <summary>
/// Which namespaces of an assembly use which: every type a type names in its signature (base type, interfaces,
/// fields, properties, method parameters and results, locals) or in its method bodies (the IL's field, method and type
/// tokens). Reading the compiled code rather than the <c>using</c> lines also catches fully qualified names and the
/// partially qualified ones C# resolves through enclosing namespaces (<c>Training.Precision.Autocast</c> inside
/// <c>SdPipeline.Lora</c>).
/// </summary>
internal static class AssemblyReferences
{
    private static readonly Dictionary<short, OpCode> OpCodesByValue = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!)
        .ToDictionary(o => o.Value);

    /// <summary>Each (using type, used type) pair inside <paramref name="assembly"/>.</summary>
    public static IEnumerable<(Type From, Type To)> Of(Assembly assembly)
    {
        foreach (var type in assembly.GetTypes())
        {
            var used = new HashSet<Type>();
            AddSignature(type, used);
            foreach (var to in used)
                if (to.Assembly == assembly && to != type) yield return (type, to);
        }
    }

    private static void AddSignature(Type type, HashSet<Type> used)
    {
        const BindingFlags all = BindingFlags.Instance | BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly;
        Add(type.BaseType, used);
        foreach (var i in type.GetInterfaces()) Add(i, used);
        foreach (var field in type.GetFields(all)) Add(field.FieldType, used);
        foreach (var property in type.GetProperties(all)) Add(property.PropertyType, used);
        foreach (var method in type.GetMethods(all).Cast<MethodBase>().Concat(type.GetConstructors(all)))
        {
            if (method is MethodInfo info) Add(info.ReturnType, used);
            foreach (var parameter in method.GetParameters()) Add(parameter.ParameterType, used);
            AddBody(method, used);
        }
    }

    private static void AddBody(MethodBase method, HashSet<Type> used)
    {
        var body = method.GetMethodBody();
        if (body is null) return;
        foreach (var local in body.LocalVariables) Add(local.LocalType, used);
        byte[] il = body.GetILAsByteArray() ?? [];
        var typeArguments = method.DeclaringType?.IsGenericType == true ? method.DeclaringType.GetGenericArguments() : null;
        var methodArguments = method.IsGenericMethod ? method.GetGenericArguments() : null;
        for (int i = 0; i < il.Length;)
        {
            short value = il[i] == 0xFE ? (short)(0xFE00 | il[i + 1]) : il[i];
            i += il[i] == 0xFE ? 2 : 1;
            var opCode = OpCodesByValue[value];
            switch (opCode.OperandType)
            {
                case OperandType.InlineField:
                case OperandType.InlineMethod:
                case OperandType.InlineTok:
                case OperandType.InlineType:
                    int token = BitConverter.ToInt32(il, i);
                    switch (method.Module.ResolveMember(token, typeArguments, methodArguments))
                    {
                        case Type t: Add(t, used); break;
                        case MethodBase m:
                            Add(m.DeclaringType, used);
                            if (m.IsGenericMethod) foreach (var a in m.GetGenericArguments()) Add(a, used);
                            break;
                        case FieldInfo f: Add(f.DeclaringType, used); break;
                    }
                    i += 4;
                    break;
                case OperandType.InlineSwitch:
                    i += 4 + 4 * BitConverter.ToInt32(il, i);
                    break;
                default:
                    i += OperandSize(opCode.OperandType);
                    break;
            }
        }
    }

    private static int OperandSize(OperandType operand) => operand switch
    {
        OperandType.InlineNone => 0,
        OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
        OperandType.InlineVar => 2,
        OperandType.InlineI8 or OperandType.InlineR => 8,
        _ => 4,
    };

    private static void Add(Type? type, HashSet<Type> used)
    {
        if (type is null || type.IsGenericParameter) return;
        if (type.HasElementType)
        {
            Add(type.GetElementType(), used);
            return;
        }
        if (!used.Add(type)) return;
        if (type.IsGenericType)
            foreach (var argument in type.GetGenericArguments()) Add(argument, used);
    }
}
