using Akka.Event;
using Romana.Actors.Addressing;
using Romana.Actors.Tests.Support;
using Romana.Contracts.Cni;
using Romana.Host.Dataplane;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Tests.Dataplane;

/// <summary>
/// The daemon's side of the socket, which is an API of its own: whatever a local client sends, the daemon validates it as
/// the plugin does, logs only escaped values, and a GC without the runtime's list releases nothing.
/// </summary>
public class CniRequestHandlerTests
{
    private static readonly NodeIdentity Node = new(new NodeName("n1"), new SubnetId("s1"), Ipv4.Parse("10.1.0.1"));

    private static async Task<StartedIpam> StartAsync(TempJournal journal)
    {
        var ipam = await journal.StartAsync(Topologies.OneSubnet("100.64.0.0/24", 26));
        Assert.IsType<Succeeded>(await ipam.AskAsync(new AddNode(Node.Name, Node.Subnet, Node.Ip.ToString())));
        return ipam;
    }

    private static CniRequestHandler Handler(StartedIpam ipam, CapturingLog log, InMemoryHostNetwork? host = null) =>
        new(ipam.Client, Node, host ?? new InMemoryHostNetwork(), log);

    private static async Task<int> HeldAsync(StartedIpam ipam) =>
        Assert.IsType<AllocationsOf>(await ipam.AskAsync(new GetAllocations(Node.Name))).Allocations.Length;

    [Theory]
    [InlineData("c1\nromana.daemon: CNI DEL forged/eth0: ok", "eth0", null, "containerId")]
    [InlineData("c1\r", "eth0", null, "containerId")]
    [InlineData("k/a", "b", null, "containerId")]
    [InlineData("k", "a/b", null, "ifName")]
    [InlineData("c1", "%d", null, "ifName")]
    [InlineData("c1", "all", null, "ifName")]
    [InlineData("c1", "eth\u00010", null, "ifName")]
    [InlineData("c1", "eth0", "web/api\nromana.daemon: forged", "pod")]
    [InlineData("c1", "eth0", "web", "pod")]
    public async Task A_request_the_plugin_would_never_send_is_invalid_changes_nothing_and_is_logged_escaped(string containerId,
        string ifName, string? pod, string field)
    {
        using var journal = new TempJournal();
        await using var ipam = await StartAsync(journal);
        var log = new CapturingLog();
        var reply = await Handler(ipam, log).HandleAsync(new DaemonRequest(DaemonProtocol.Add, containerId, ifName, Pod: pod));
        Assert.False(reply.Ok);
        Assert.Equal("invalid", reply.Code);
        Assert.StartsWith(field, reply.Error);
        Assert.Equal(0, await HeldAsync(ipam));
        Assert.All(log.Lines, line => Assert.DoesNotMatch("[\\x00-\\x1f\\x7f]", line));
        Assert.DoesNotMatch("[\\x00-\\x1f\\x7f]", reply.Error!);
    }

    [Fact]
    public async Task A_container_id_of_100000_characters_is_invalid_in_a_short_reply_and_a_short_log_line()
    {
        using var journal = new TempJournal();
        await using var ipam = await StartAsync(journal);
        var log = new CapturingLog();
        var reply = await Handler(ipam, log).HandleAsync(new DaemonRequest(DaemonProtocol.Add, new string('a', 100_000), "eth0"));
        Assert.Equal("invalid", reply.Code);
        Assert.InRange(reply.Error!.Length, 1, 400);
        Assert.All(log.Lines, line => Assert.InRange(line.Length, 0, 1000));
        Assert.Equal(0, await HeldAsync(ipam));
    }

    [Fact]
    public async Task An_unknown_command_of_100000_characters_is_answered_and_logged_short()
    {
        using var journal = new TempJournal();
        await using var ipam = await StartAsync(journal);
        var log = new CapturingLog();
        var reply = await Handler(ipam, log).HandleAsync(new DaemonRequest(new string('X', 100_000) + "\n", "c1", "eth0"));
        Assert.Equal("invalid", reply.Code);
        Assert.InRange(reply.Error!.Length, 1, 400);
        Assert.DoesNotContain('\n', reply.Error);
        Assert.All(log.Lines, line => Assert.InRange(line.Length, 0, 1000));
    }

    /// <summary>
    /// "valid" is the runtime's list of live attachments; a GC without it is malformed (an empty list is a node without pods).
    /// </summary>
    [Fact]
    public async Task A_GC_without_the_list_of_valid_attachments_is_invalid_and_releases_nothing()
    {
        using var journal = new TempJournal();
        await using var ipam = await StartAsync(journal);
        var handler = Handler(ipam, new CapturingLog());
        Assert.True((await handler.HandleAsync(new DaemonRequest(DaemonProtocol.Add, "c1", "eth0"))).Ok);
        var reply = await handler.HandleAsync(new DaemonRequest(DaemonProtocol.Gc, "", ""));
        Assert.False(reply.Ok);
        Assert.Equal("invalid", reply.Code);
        Assert.Contains("valid", reply.Error);
        Assert.Equal(1, await HeldAsync(ipam));
    }

    private const string PodA = "0:4:4026532301";
    private const string PodB = "0:4:4026532302";

    /// <summary>The namespace an address went to decides: from another, ADD and CHECK are conflicts and DEL releases nothing.</summary>
    [Fact]
    public async Task A_key_used_from_another_namespace_is_a_conflict_for_ADD_and_CHECK_and_DEL_releases_nothing()
    {
        using var journal = new TempJournal();
        await using var ipam = await StartAsync(journal);
        var handler = Handler(ipam, new CapturingLog());
        var added = await handler.HandleAsync(new DaemonRequest(DaemonProtocol.Add, "c1", "eth0", NetnsId: PodA));
        Assert.True(added.Ok);
        var again = await handler.HandleAsync(new DaemonRequest(DaemonProtocol.Add, "c1", "eth0", NetnsId: PodA));
        Assert.Equal(added.Address, again.Address);
        foreach (var command in new[] { DaemonProtocol.Add, DaemonProtocol.Check, DaemonProtocol.Del })
        {
            var reply = await handler.HandleAsync(new DaemonRequest(command, "c1", "eth0", NetnsId: PodB));
            Assert.False(reply.Ok, command);
            Assert.Equal("conflict", reply.Code);
            Assert.Contains(PodA, reply.Error);
        }
        var checkedFromA = await handler.HandleAsync(new DaemonRequest(DaemonProtocol.Check, "c1", "eth0", NetnsId: PodA));
        Assert.Equal(added.Address, checkedFromA.Address);
        Assert.True((await handler.HandleAsync(new DaemonRequest(DaemonProtocol.Del, "c1", "eth0", NetnsId: PodA))).Ok);
        Assert.Equal(0, await HeldAsync(ipam));
    }

    /// <summary>A newly decided address that the host still routes to a pod is set aside, and the ADD gets the next one.</summary>
    [Fact]
    public async Task An_address_the_host_still_routes_is_set_aside_and_the_ADD_gets_the_next()
    {
        using var journal = new TempJournal();
        await using var ipam = await StartAsync(journal);
        var host = new InMemoryHostNetwork();
        host.InUse["100.64.0.0"] = "route 100.64.0.0/32 dev rmn0123456789a";
        host.InUse["100.64.0.1"] = "route 100.64.0.1/32 dev rmn0123456789b";
        var handler = Handler(ipam, new CapturingLog(), host);
        var added = await handler.HandleAsync(new DaemonRequest(DaemonProtocol.Add, "c1", "eth0", NetnsId: PodA));
        Assert.Equal("100.64.0.2", added.Address);
        var held = Assert.IsType<AllocationsOf>(await ipam.AskAsync(new GetAllocations(Node.Name))).Allocations;
        Assert.Equal(["in-use:100.64.0.0", "in-use:100.64.0.1", "c1/eth0"], held.OrderBy(a => a.Address).Select(a => a.Key.Value));
        Assert.Equal(4, journal.CountEventsWhere("payload LIKE '%still exists on node n1%'")); // a release and an allocation each

        // A GC keeps what is still in use and releases the set-aside addresses once nothing uses them.
        host.InUse.TryRemove("100.64.0.0", out _);
        var collected = await handler.HandleAsync(new DaemonRequest(DaemonProtocol.Gc, "", "", Valid: ["c1/eth0"]));
        Assert.Equal((true, 1, 1), (collected.Ok, collected.Released, collected.Kept));
        Assert.Equal("100.64.0.0", (await handler.HandleAsync(new DaemonRequest(DaemonProtocol.Add, "c2", "eth0", NetnsId: PodB))).Address);
    }

    /// <summary>GC releases an attachment the runtime no longer lists only once its veth (or its route) is gone.</summary>
    [Fact]
    public async Task GC_releases_an_unlisted_attachment_only_once_its_veth_is_gone()
    {
        using var journal = new TempJournal();
        await using var ipam = await StartAsync(journal);
        var host = new InMemoryHostNetwork();
        var handler = Handler(ipam, new CapturingLog(), host);
        Assert.True((await handler.HandleAsync(new DaemonRequest(DaemonProtocol.Add, "c1", "eth0"))).Ok);
        Assert.True((await handler.HandleAsync(new DaemonRequest(DaemonProtocol.Add, "c2", "eth0"))).Ok);
        host.InUse[CniIdentifiers.HostVethName("c1", "eth0")] = "veth";
        var first = await handler.HandleAsync(new DaemonRequest(DaemonProtocol.Gc, "", "", Valid: []));
        Assert.Equal((true, 1, 1), (first.Ok, first.Released, first.Kept));
        host.InUse.Clear();
        var second = await handler.HandleAsync(new DaemonRequest(DaemonProtocol.Gc, "", "", Valid: []));
        Assert.Equal((true, 1, 0), (second.Ok, second.Released, second.Kept));
        Assert.Equal(0, await HeldAsync(ipam));
        var malformed = await handler.HandleAsync(new DaemonRequest(DaemonProtocol.Gc, "", "", Valid: ["k/a/b", "c1"]));
        Assert.Equal("invalid", malformed.Code);
        Assert.StartsWith("valid[0]: ifName", malformed.Error);
    }

    /// <summary>
    /// A runtime that retries an ADD while the first is still being answered (its plugin timed out and went away) gets the
    /// same address twice; the first reply then cannot be delivered. The address stays held: the second reply delivered
    /// it to the pod. Only when no other answer for the key is outstanding does an undelivered reply give it back.
    /// </summary>
    [Fact]
    public async Task An_undelivered_ADD_reply_releases_nothing_while_another_answer_for_the_same_key_handed_out_the_address()
    {
        using var journal = new TempJournal();
        await using var ipam = await StartAsync(journal);
        var handler = Handler(ipam, new CapturingLog());
        var add = new DaemonRequest(DaemonProtocol.Add, "c1", "eth0", NetnsId: "1:2:3");
        var (first, retried) = (await handler.HandleAsync(add), await handler.HandleAsync(add));
        Assert.True(first.Ok && retried.Ok && first.Address == retried.Address, $"{first} {retried}");

        await handler.UndeliveredAsync(add, first, "the plugin went away");
        Assert.Equal(first.Address, Assert.IsType<AddressAssigned>(await ipam.AskAsync(new GetAddress(new AllocationKey("c1/eth0"))))
            .Address.ToString());

        // Alone, an undelivered reply gives the address back (the plugin reports the ADD failed and wires nothing).
        Assert.True((await handler.HandleAsync(add with { Command = DaemonProtocol.Del })).Ok);
        var again = await handler.HandleAsync(add);
        await handler.UndeliveredAsync(add, again, "the plugin went away");
        Assert.Equal(0, await HeldAsync(ipam));
    }
}

/// <summary>A logging adapter that keeps each formatted line, as the daemon's log would print it.</summary>
public sealed class CapturingLog() : LoggingAdapterBase(DefaultLogMessageFormatter.Instance)
{
    private readonly List<string> _lines = [];

    public IReadOnlyList<string> Lines
    {
        get { lock (_lines) return [.. _lines]; }
    }

    public override bool IsDebugEnabled => true;
    public override bool IsInfoEnabled => true;
    public override bool IsWarningEnabled => true;
    public override bool IsErrorEnabled => true;

    protected override void NotifyLog(LogLevel logLevel, object message, Exception? cause = null)
    {
        lock (_lines) _lines.Add(message.ToString() ?? "");
    }

}
