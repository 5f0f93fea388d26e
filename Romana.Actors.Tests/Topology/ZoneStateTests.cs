using Romana.Actors.Topology;

namespace Romana.Actors.Tests.Topology;

public class ZoneStateTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.UnixEpoch;

    private static ZoneLayout Layout(params (string Id, string Prefix)[] subnets) =>
        TopologyCarver.Carve(new TopologySpec("10.0.0.0/16", 26,
            [new ZoneSpec("z", [.. subnets.Select(s => new SubnetSpec(s.Id, s.Prefix))], "10.0.0.0/16")])).Zones[0];

    private static ZoneState Declared(ZoneLayout layout)
    {
        var (events, error) = ZoneState.Empty(layout.Name).DecideDeclare(layout, Now);
        Assert.Null(error);
        return events.Aggregate(ZoneState.Empty(layout.Name), (s, e) => s.Apply(e));
    }

    [Fact]
    public void The_first_declaration_records_every_prefix_and_the_same_again_records_nothing()
    {
        var layout = Layout(("s1", "10.0.0.0/17"), ("s2", "10.0.128.0/17"));
        var (events, _) = ZoneState.Empty(layout.Name).DecideDeclare(layout, Now);
        Assert.Equal(3, events.Length);
        var (again, error) = Declared(layout).DecideDeclare(layout, Now);
        Assert.Null(error);
        Assert.Empty(again);
    }

    [Fact]
    public void A_new_subnet_beside_the_others_is_recorded()
    {
        var state = Declared(Layout(("s1", "10.0.0.0/17")));
        var (events, error) = state.DecideDeclare(Layout(("s1", "10.0.0.0/17"), ("s2", "10.0.128.0/17")), Now);
        Assert.Null(error);
        Assert.IsType<ZoneMessages.SubnetPrefixAssigned>(Assert.Single(events));
    }

    [Theory]
    [InlineData("10.0.0.0/18", "subnet s1 of zone z was carved as 10.0.0.0/17; the configuration now gives 10.0.0.0/18")]
    public void A_moved_prefix_is_refused(string moved, string expected)
    {
        var (_, error) = Declared(Layout(("s1", "10.0.0.0/17"))).DecideDeclare(Layout(("s1", moved)), Now);
        Assert.Contains(expected, error!.Message);
    }

    [Fact]
    public void A_subnet_that_disappeared_from_the_configuration_is_refused()
    {
        var (_, error) = Declared(Layout(("s1", "10.0.0.0/17"), ("s2", "10.0.128.0/17"))).DecideDeclare(Layout(("s1", "10.0.0.0/17")), Now);
        Assert.Contains("subnet s2 of zone z (10.0.128.0/17) is in the journal but not in the configuration", error!.Message);
    }
}
