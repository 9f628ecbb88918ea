namespace MailMesh.Testing.Hosting;

/// <summary>The MailMesh services of the distributed mode.</summary>
public enum MeshService
{
    Ingress,
    Policy,
    Queue,
    Dns,
    Delivery,
    Mailbox,
}
