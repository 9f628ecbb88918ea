using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace MailMesh.Storage;

/// <summary>One versioned schema script, embedded in this assembly as Migrations/&lt;provider&gt;/NNNN_name.sql.</summary>
internal sealed record Migration(int Version, string Name, string Sql, string Checksum)
{
    /// <summary>The migrations of one provider ("Postgres" or "Sqlite"), in version order.</summary>
    public static IReadOnlyList<Migration> Load(string provider)
    {
        var assembly = typeof(Migration).Assembly;
        var prefix = $"MailMesh.Storage.Migrations.{provider}.";
        var migrations = new List<Migration>();
        foreach (var resource in assembly.GetManifestResourceNames())
        {
            if (!resource.StartsWith(prefix, StringComparison.Ordinal) || !resource.EndsWith(".sql", StringComparison.Ordinal))
            {
                continue;
            }

            var name = resource[prefix.Length..^".sql".Length];
            var separator = name.IndexOf('_', StringComparison.Ordinal);
            if (separator <= 0 || !int.TryParse(name.AsSpan(0, separator), NumberStyles.None, CultureInfo.InvariantCulture, out var version))
            {
                throw new InvalidOperationException($"Migration resource '{resource}' is not named NNNN_description.sql.");
            }

            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var reader = new StreamReader(stream, Encoding.UTF8);
            var sql = reader.ReadToEnd();
            var checksum = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sql)));
            migrations.Add(new Migration(version, name, sql, checksum));
        }

        migrations.Sort((a, b) => a.Version.CompareTo(b.Version));
        for (var i = 1; i < migrations.Count; i++)
        {
            if (migrations[i].Version == migrations[i - 1].Version)
            {
                throw new InvalidOperationException($"Two migrations have version {migrations[i].Version}.");
            }
        }

        return migrations;
    }
}
