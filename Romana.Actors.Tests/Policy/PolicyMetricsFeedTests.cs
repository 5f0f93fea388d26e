using Akka.Actor;
using Akka.TestKit.Xunit2;
using Romana.Actors.Policy;
using Romana.Actors.Tests.Observability;
using Romana.Host.Observability;
using Romana.Host.Policy;

namespace Romana.Actors.Tests.Policy;

public sealed class PolicyMetricsFeedTests : TestKit
{
    [Fact]
    public async Task Drops_keep_counting_across_a_kernel_counter_that_starts_again_after_a_table_replace()
    {
        var metrics = new RomanaMetrics();
        var feed = Sys.ActorOf(Props.Create(() => new PolicyMetricsFeed(metrics)));
        async Task<double> Packets() => new Exposition(await metrics.ExportAsync())
            .Values("romana_policy_dropped_packets_total", "pod=x/a", "direction=ingress").DefaultIfEmpty(double.NaN).Single();
        async Task AfterReading(long kernelPackets, double expected)
        {
            var drops = new PolicyDrops("x/a", PolicyDirections.Ingress, kernelPackets, 60 * kernelPackets);
            feed.Tell(new PolicyAgentMessages.DropsRead([drops]));
            await AwaitAssertAsync(async () => Assert.Equal(expected, await Packets()), TimeSpan.FromSeconds(3));
        }

        await AfterReading(5, 5);
        await AfterReading(8, 8);
        // The table was replaced whole: the kernel's counter started at 0 again and has counted 3 since.
        await AfterReading(3, 11);
        await AfterReading(4, 12);
    }

    [Fact]
    public void A_kernel_counter_below_its_last_reading_started_again_and_all_of_it_is_new()
    {
        var feed = new KernelCounterFeed();
        var counter = ("x/a", "egress", "bytes");
        Assert.Equal(100, feed.Increase(counter, 100));
        Assert.Equal(50, feed.Increase(counter, 150));
        Assert.Equal(0, feed.Increase(counter, 150));
        Assert.Equal(20, feed.Increase(counter, 20));
        Assert.Equal(7, feed.Increase(("x/b", "egress", "bytes"), 7));
        Assert.Equal(5, feed.Increase(counter, 25));
    }
}
