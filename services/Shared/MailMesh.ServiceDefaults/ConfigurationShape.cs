using System.Collections;
using System.ComponentModel;
using System.Reflection;
using Microsoft.Extensions.Configuration;

namespace MailMesh.ServiceDefaults;

/// <summary>
/// Binds a configuration section to an options object and, where the binder fails on the shape of the
/// configuration (a list or section given for a key that takes one value, e.g. <c>--Dns:Servers:0=…</c> for
/// <c>Dns:Servers</c>), names the key instead of the binder's "Cannot create instance of type 'System.String'".
/// </summary>
public static class ConfigurationShape
{
    /// <summary>Binds <paramref name="section"/> to <paramref name="options"/>; a list or section where one value goes throws <see cref="ConfigurationKeyException"/>.</summary>
    public static void Bind(IConfigurationSection section, object options)
    {
        ArgumentNullException.ThrowIfNull(section);
        ArgumentNullException.ThrowIfNull(options);
        // Checked first and always: where the binder does not throw on a list given for one value, it ignores it,
        // and the operator's setting would silently not apply.
        if (FindMisshapenKey(options.GetType(), section) is { } key)
        {
            throw new ConfigurationKeyException(
                key.Path,
                $"takes one value, but was given a list or section ({key.GetChildren().First().Path}); write {key.Path}=<value>");
        }

        section.Bind(options);
    }

    /// <summary>The first key under <paramref name="section"/> that holds children where <paramref name="type"/> expects one value.</summary>
    public static IConfigurationSection? FindMisshapenKey(Type type, IConfigurationSection section)
    {
        ArgumentNullException.ThrowIfNull(type);
        ArgumentNullException.ThrowIfNull(section);
        return Find(type, section, depth: 0);
    }

    private static IConfigurationSection? Find(Type type, IConfigurationSection section, int depth)
    {
        if (depth > 16)
        {
            return null;
        }

        type = Nullable.GetUnderlyingType(type) ?? type;
        var children = section.GetChildren().ToList();
        if (IsScalar(type))
        {
            return children.Count > 0 ? section : null;
        }

        if (ElementType(type) is { } element)
        {
            return children.Select(child => Find(element, child, depth + 1)).FirstOrDefault(found => found is not null);
        }

        foreach (var child in children)
        {
            var property = type.GetProperty(child.Key, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
            if (property is not null && Find(property.PropertyType, child, depth + 1) is { } found)
            {
                return found;
            }
        }

        return null;
    }

    private static bool IsScalar(Type type) =>
        type == typeof(string) || type.IsPrimitive || type.IsEnum || TypeDescriptor.GetConverter(type).CanConvertFrom(typeof(string));

    /// <summary>The element (or dictionary value) type of a collection, or null for anything else.</summary>
    private static Type? ElementType(Type type)
    {
        if (type.IsArray)
        {
            return type.GetElementType();
        }

        if (!typeof(IEnumerable).IsAssignableFrom(type) && !type.IsInterface)
        {
            return null;
        }

        var generic = type.IsGenericType && type.IsInterface ? type : type.GetInterfaces().FirstOrDefault(i =>
            i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IDictionary<,>))
            ?? type.GetInterfaces().FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IEnumerable<>));
        if (generic is null || !generic.IsGenericType)
        {
            return null;
        }

        var arguments = generic.GetGenericArguments();
        return arguments.Length == 2 ? arguments[1] : arguments[0];
    }
}
