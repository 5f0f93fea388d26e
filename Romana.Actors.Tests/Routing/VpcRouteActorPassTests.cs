using System.Collections.Concurrent;
using Akka.Actor;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Routing;
using Romana.Actors.Tests.Support;
using static Romana.Actors.Routing.RouteManagerMessages;

namespace Romana.Actors.Tests.Routing;

/// <summary>
/// The messages of a pass, seen from outside: the route manager on an in-memory journal, with a cluster source and an
/// EC2 whose every answer the test gives by hand.
/// </summary>
public class VpcRouteActorPassTests() : Akka.TestKit.Xunit2.TestKit(InMemoryJournal.Config)
{
    /// <summary>One subnet, one node without an ENI and no blocks: a plan with nothing to send, so a pass ends after describing.</summary>
    private static readonly RoutingSnapshot Cluster = new(
        [new PlanSubnet(new("s1"), Ipv4Cidr.Parse("100.64.0.0/24"), "rtb-a")],
        [new PlanNode(new("a1"), new("s1"), Ipv4.Parse("10.0.0.1"), "", true)], []);

    private static readonly RouteSettings Settings = RouteSettings.Default with
    {
        ReconcileInterval = TimeSpan.FromMinutes(10),
        RetryMinBackoff = TimeSpan.FromSeconds(2),
        RetryMaxBackoff = TimeSpan.FromSeconds(2),
        RetryMaxAttempts = 3,
    };

    private readonly Answers<RoutingSnapshot> _reads = new();
    private readonly Answers<IReadOnlyList<Ec2RouteTable>> _describes = new();

    private IActorRef StartManager() =>
        Sys.ActorOf(VpcRouteActor.Props(new HandAnsweredEc2(_describes), new HandAnsweredSource(_reads), Settings, SystemClock.Instance));

    private static Task<RouteManagerView> ViewAsync(IActorRef manager) =>
        manager.Ask<RouteManagerView>(new GetRouteState(), TimeSpan.FromSeconds(5));

    private async Task UntilAsync(IActorRef manager, Func<RouteManagerView, bool> holds) =>
        await AwaitConditionAsync(async () => holds(await ViewAsync(manager)), TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(20));

    [Fact]
    public async Task While_it_works_its_view_says_for_the_cluster_an_ec2_answer_or_a_retry()
    {
        var manager = StartManager();
        await UntilAsync(manager, v => v is { Busy: true, WaitingFor: "cluster" });

        _reads.Next().SetResult(Cluster);
        var describe = _describes.Next();
        await UntilAsync(manager, v => v is { Busy: true, WaitingFor: "ec2" });

        describe.SetException(new Ec2Error("RequestLimitExceeded", 400, "slow down"));
        await UntilAsync(manager, v => v.WaitingFor == "retry");

        _describes.Next().SetResult([]); // the same call, sent again after the backoff
        await UntilAsync(manager, v => v is { Busy: false, Passes: 1, WaitingFor: null });
    }

    [Fact]
    public async Task A_describe_refused_for_good_is_recorded_and_the_next_check_describes_again()
    {
        Sys.EventStream.Subscribe(TestActor, typeof(Ec2CallFailed));
        var manager = StartManager();
        _reads.Next().SetResult(Cluster);
        _describes.Next().SetException(new Ec2Error("UnauthorizedOperation", 403, "not allowed"));

        var failed = await ExpectMsgAsync<Ec2CallFailed>();
        Assert.Equal(("DescribeRouteTables", "UnauthorizedOperation", "retried at the next check"),
            (failed.Action, failed.Code, failed.Reason));
        await UntilAsync(manager, v => v is { Busy: false, Passes: 1 });

        manager.Tell(new Reconcile("periodic check"));
        _reads.Next().SetResult(Cluster);
        _describes.Next().SetResult([]);
        await UntilAsync(manager, v => v is { Busy: false, Passes: 2 });
    }

    /// <summary>Every call waits until the test completes the task it left.</summary>
    private sealed class Answers<T>
    {
        private readonly BlockingCollection<TaskCompletionSource<T>> _calls = new();

        public Task<T> Call()
        {
            var call = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
            _calls.Add(call);
            return call.Task;
        }

        public TaskCompletionSource<T> Next() =>
            _calls.TryTake(out var call, TimeSpan.FromSeconds(10)) ? call : throw new TimeoutException("the call did not come");
    }

    private sealed class HandAnsweredSource(Answers<RoutingSnapshot> reads) : IRoutingSource
    {
        public Task<RoutingSnapshot> ReadAsync(CancellationToken cancellation = default) => reads.Call();
    }

    /// <summary>Describes by hand; these tests plan nothing to send, so any other call is a mistake.</summary>
    private sealed class HandAnsweredEc2(Answers<IReadOnlyList<Ec2RouteTable>> describes) : IEc2RouteTables
    {
        public Task<IReadOnlyList<Ec2RouteTable>> DescribeAsync(RouteTableSelector selector, CancellationToken cancellation = default) =>
            describes.Call();

        public Task CreateRouteAsync(string table, Ipv4Cidr destination, string eni, CancellationToken cancellation = default) =>
            Unexpected();
        public Task ReplaceRouteAsync(string table, Ipv4Cidr destination, string eni, CancellationToken cancellation = default) =>
            Unexpected();
        public Task DeleteRouteAsync(string table, Ipv4Cidr destination, CancellationToken cancellation = default) => Unexpected();
        public Task DisableSourceDestCheckAsync(string eni, CancellationToken cancellation = default) => Unexpected();

        private static Task Unexpected() => Task.FromException(new InvalidOperationException("no call was planned"));
    }
}
