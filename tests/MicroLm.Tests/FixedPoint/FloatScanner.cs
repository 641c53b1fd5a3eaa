using System.Collections.Immutable;
using System.Reflection;
using System.Reflection.Emit;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;

namespace MicroLm.Tests.FixedPoint;

/// <summary>Reads the IL of every method of the types in one namespace (nested and compiler-generated
/// types included) and reports every way a floating-point value can enter it: float opcodes (ldc.r4/r8,
/// conv.r4/r8/r.un, ckfinite, ldind/stind/ldelem/stelem .r4/.r8), and any field, local, parameter, return
/// value, called member, type token or generic argument whose type mentions float32, float64, Half,
/// decimal, Vector&lt;T&gt; or MathF. IL arithmetic is untyped, so a float can only appear through one of these.</summary>
internal static class FloatScanner
{
    private static readonly HashSet<string> FloatOpcodes =
    [
        "ldc.r4", "ldc.r8", "conv.r4", "conv.r8", "conv.r.un", "ckfinite",
        "ldind.r4", "ldind.r8", "stind.r4", "stind.r8", "ldelem.r4", "ldelem.r8", "stelem.r4", "stelem.r8",
    ];

    private static readonly Dictionary<short, OpCode> OpCodesByValue = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!)
        .ToDictionary(o => o.Value);

    public static bool MentionsFloat(string type) =>
        type.Contains("float32", StringComparison.Ordinal) || type.Contains("float64", StringComparison.Ordinal)
        || type.Contains("System.Half", StringComparison.Ordinal) || type.Contains("System.Single", StringComparison.Ordinal)
        || type.Contains("System.Double", StringComparison.Ordinal) || type.Contains("System.Decimal", StringComparison.Ordinal)
        || type.Contains("System.MathF", StringComparison.Ordinal) || type.Contains("System.Numerics.Vector`1", StringComparison.Ordinal)
        || type.Contains("System.Numerics.Vector<", StringComparison.Ordinal);

    public sealed record Report(List<string> Findings, List<string> MethodsScanned);

    /// <param name="allowedMethods">"Type.Method" names whose signatures and member references may
    /// mention float (float opcodes stay forbidden there too).</param>
    public static Report Scan(string assemblyPath, string ns, IReadOnlySet<string> allowedMethods)
    {
        using var pe = new PEReader(File.OpenRead(assemblyPath));
        var md = pe.GetMetadataReader();
        var names = new TypeNames(md);
        var findings = new List<string>();
        var scanned = new List<string>();
        foreach (var typeHandle in md.TypeDefinitions)
        {
            var type = md.GetTypeDefinition(typeHandle);
            if (OuterNamespace(md, type) != ns) continue;
            string typeName = names.GetTypeFromDefinition(md, typeHandle, 0);
            foreach (var fh in type.GetFields())
            {
                var field = md.GetFieldDefinition(fh);
                string sig = field.DecodeSignature(names, null);
                if (MentionsFloat(sig)) findings.Add($"{typeName}.{md.GetString(field.Name)}: field of type {sig}");
            }
            foreach (var mh in type.GetMethods())
            {
                var method = md.GetMethodDefinition(mh);
                string name = $"{typeName}.{md.GetString(method.Name)}";
                bool allowed = allowedMethods.Contains(name);
                scanned.Add(name);
                var sig = method.DecodeSignature(names, null);
                if (!allowed && (MentionsFloat(sig.ReturnType) || sig.ParameterTypes.Any(MentionsFloat)))
                    findings.Add($"{name}: signature ({string.Join(", ", sig.ParameterTypes)}) → {sig.ReturnType}");
                if (method.RelativeVirtualAddress == 0) continue;
                var body = pe.GetMethodBody(method.RelativeVirtualAddress);
                if (!body.LocalSignature.IsNil)
                {
                    var locals = md.GetStandaloneSignature(body.LocalSignature).DecodeLocalSignature(names, null);
                    foreach (var local in locals)
                        if (MentionsFloat(local)) findings.Add($"{name}: local of type {local}");
                }
                ScanIl(md, names, body.GetILBytes()!, name, allowed, findings);
            }
        }
        return new Report(findings, scanned);
    }

    private static string? OuterNamespace(MetadataReader md, TypeDefinition type)
    {
        while (type.IsNested) type = md.GetTypeDefinition(type.GetDeclaringType());
        return md.GetString(type.Namespace);
    }

    private static void ScanIl(MetadataReader md, TypeNames names, byte[] il, string method, bool allowed, List<string> findings)
    {
        int i = 0;
        while (i < il.Length)
        {
            int at = i;
            short value = il[i++];
            if (value == 0xFE) value = (short)(0xFE00 | il[i++]);
            var op = OpCodesByValue[value];
            if (FloatOpcodes.Contains(op.Name!)) findings.Add($"{method}: IL_{at:x4} {op.Name}");
            switch (op.OperandType)
            {
                case OperandType.InlineNone: break;
                case OperandType.ShortInlineBrTarget: case OperandType.ShortInlineI: case OperandType.ShortInlineVar: i += 1; break;
                case OperandType.InlineVar: i += 2; break;
                case OperandType.InlineI8: case OperandType.InlineR: i += 8; break;
                case OperandType.InlineSwitch: i += 4 + 4 * BitConverter.ToInt32(il, i); break;
                case OperandType.InlineField: case OperandType.InlineMethod: case OperandType.InlineType:
                case OperandType.InlineTok: case OperandType.InlineSig:
                    var handle = MetadataTokens.EntityHandle(BitConverter.ToInt32(il, i));
                    string described = Describe(md, names, handle);
                    if (!allowed && MentionsFloat(described)) findings.Add($"{method}: IL_{at:x4} {op.Name} {described}");
                    i += 4;
                    break;
                default: i += 4; break; // InlineI, InlineBrTarget, InlineString, ShortInlineR
            }
        }
    }

    /// <summary>A member or type token as text: its declaring type, name and full signature.</summary>
    private static string Describe(MetadataReader md, TypeNames names, EntityHandle handle)
    {
        switch (handle.Kind)
        {
            case HandleKind.MethodDefinition:
            {
                var m = md.GetMethodDefinition((MethodDefinitionHandle)handle);
                var sig = m.DecodeSignature(names, null);
                return $"{names.GetTypeFromDefinition(md, m.GetDeclaringType(), 0)}.{md.GetString(m.Name)}({string.Join(", ", sig.ParameterTypes)}) → {sig.ReturnType}";
            }
            case HandleKind.FieldDefinition:
            {
                var f = md.GetFieldDefinition((FieldDefinitionHandle)handle);
                return $"{names.GetTypeFromDefinition(md, f.GetDeclaringType(), 0)}.{md.GetString(f.Name)} : {f.DecodeSignature(names, null)}";
            }
            case HandleKind.MemberReference:
            {
                var r = md.GetMemberReference((MemberReferenceHandle)handle);
                string parent = r.Parent.Kind switch
                {
                    HandleKind.TypeReference or HandleKind.TypeDefinition or HandleKind.TypeSpecification => Describe(md, names, (EntityHandle)r.Parent),
                    _ => "?",
                };
                string sig = r.GetKind() == MemberReferenceKind.Method
                    ? MethodText(r.DecodeMethodSignature(names, null))
                    : r.DecodeFieldSignature(names, null);
                return $"{parent}.{md.GetString(r.Name)} {sig}";
            }
            case HandleKind.MethodSpecification:
            {
                var s = md.GetMethodSpecification((MethodSpecificationHandle)handle);
                return $"{Describe(md, names, s.Method)}<{string.Join(", ", s.DecodeSignature(names, null))}>";
            }
            case HandleKind.TypeDefinition: return names.GetTypeFromDefinition(md, (TypeDefinitionHandle)handle, 0);
            case HandleKind.TypeReference: return names.GetTypeFromReference(md, (TypeReferenceHandle)handle, 0);
            case HandleKind.TypeSpecification: return md.GetTypeSpecification((TypeSpecificationHandle)handle).DecodeSignature(names, null);
            case HandleKind.StandaloneSignature: return "calli float32"; // an indirect call: never expected, always reported
            default: return handle.Kind.ToString();
        }
    }

    private static string MethodText(MethodSignature<string> sig) => $"({string.Join(", ", sig.ParameterTypes)}) → {sig.ReturnType}";

    /// <summary>Signature types as text ("float32", "System.Math", "int32[]", "Generic`1&lt;float32&gt;").</summary>
    private sealed class TypeNames(MetadataReader md) : ISignatureTypeProvider<string, object?>
    {
        public string GetPrimitiveType(PrimitiveTypeCode code) => code switch
        {
            PrimitiveTypeCode.Single => "float32",
            PrimitiveTypeCode.Double => "float64",
            _ => code.ToString().ToLowerInvariant(),
        };
        public string GetTypeFromDefinition(MetadataReader reader, TypeDefinitionHandle handle, byte rawTypeKind)
        {
            var t = reader.GetTypeDefinition(handle);
            string name = reader.GetString(t.Name);
            return t.IsNested ? $"{GetTypeFromDefinition(reader, t.GetDeclaringType(), 0)}.{name}" : $"{reader.GetString(t.Namespace)}.{name}";
        }
        public string GetTypeFromReference(MetadataReader reader, TypeReferenceHandle handle, byte rawTypeKind)
        {
            var t = reader.GetTypeReference(handle);
            string name = reader.GetString(t.Name);
            return t.ResolutionScope.Kind == HandleKind.TypeReference
                ? $"{GetTypeFromReference(reader, (TypeReferenceHandle)t.ResolutionScope, 0)}.{name}"
                : $"{reader.GetString(t.Namespace)}.{name}";
        }
        public string GetTypeFromSpecification(MetadataReader reader, object? context, TypeSpecificationHandle handle, byte rawTypeKind) =>
            reader.GetTypeSpecification(handle).DecodeSignature(this, context);
        public string GetSZArrayType(string element) => element + "[]";
        public string GetArrayType(string element, ArrayShape shape) => element + "[,]";
        public string GetByReferenceType(string element) => element + "&";
        public string GetPointerType(string element) => element + "*";
        public string GetPinnedType(string element) => element + " pinned";
        public string GetGenericInstantiation(string generic, ImmutableArray<string> args) => $"{generic}<{string.Join(", ", args)}>";
        public string GetGenericMethodParameter(object? context, int index) => $"!!{index}";
        public string GetGenericTypeParameter(object? context, int index) => $"!{index}";
        public string GetFunctionPointerType(MethodSignature<string> sig) => "method " + MethodText(sig);
        public string GetModifiedType(string modifier, string unmodified, bool isRequired) => unmodified;
        public string GetTypeFromSerializedName(string name) => name;
        public PrimitiveTypeCode GetUnderlyingEnumType(string type) => PrimitiveTypeCode.Int32;
        public bool IsSystemType(string type) => type == "System.Type";
        public string GetSystemType() => "System.Type";
        private readonly MetadataReader _md = md;
    }
}
