using MailMesh.Testing.Hosting;

namespace MailMesh.Scale.IntegrationTests;

/// <summary>
/// The distributed mode scaled out on one machine (<see cref="DistributedMesh"/>): one database and one virtual host
/// shared by any number of replicas of each service, in-process or as processes. One SMTP sink on 127.0.0.1 takes
/// mail for both <see cref="DestinationDomain"/> and <see cref="SenderDomain"/>; rate limits are out of the way.
/// </summary>
internal static class Cluster
{
    public const string DestinationDomain = DistributedMesh.DestinationDomain;
    public const string SenderDomain = DistributedMesh.SenderDomain;

    public static async Task<DistributedMesh> CreateAsync()
    {
        var cluster = await DistributedMesh.CreateAsync("mailmesh_scale", separateSenderMailbox: false);
        cluster.Settings["Queue:LeaseDuration"] = "00:00:30";
        cluster.Settings["Policy:ConnectionsPerMinutePerIp"] = "100000";
        cluster.Settings["Policy:MessagesPerMinutePerIp"] = "100000";
        return cluster;
    }
}
