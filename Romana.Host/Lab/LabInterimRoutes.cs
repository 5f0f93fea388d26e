namespace Romana.Host.Lab;

/// <summary>
/// What stands in for the route manager until the daemons form one cluster (issue 12's membership and IPAM pieces): each
/// daemon is an island with its own journal and hands out addresses only from its node's slice of the subnet's pod prefix
/// (<see cref="LabDaemonConfig"/>), so the lab routes every slice to its node's ENI in every table, and turns the ENIs'
/// source/destination check off, through the EC2 API as the route manager would. Once the daemons run the route
/// singleton, this goes, and the route limit of <see cref="LabOptions"/> applies as given.
/// </summary>
public static class LabInterimRoutes
{
    public static async Task ProgramAsync(LabLayout layout, LabEc2Client ec2)
    {
        foreach (var node in layout.Nodes) await ec2.SetSourceDestCheckAsync(node.Eni, on: false);
        foreach (var table in layout.RouteTables)
            foreach (var node in layout.Nodes)
                await ec2.CreateRouteAsync(table.Id, node.PodSlice, node.Eni);
    }
}
