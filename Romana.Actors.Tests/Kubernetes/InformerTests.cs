using System.Collections.Concurrent;
using System.Diagnostics;
using k8s.Models;
using Romana.Actors.Kubernetes;
using Romana.Actors.Tests.Support;
using Romana.Host.Kubernetes;

namespace Romana.Actors.Tests.Kubernetes;

/// <summary>The informer's pure part: the cache, what a watch event does to it, and the deltas a re-list yields.</summary>
public sealed class InformerCacheTests
{
    private static KubeNode N(string name, string uid, string version) => new(name, uid, version, null, null, ["10.0.0.1"]);

    [Fact]
    public void A_relist_delivers_the_deletes_adds_and_changes_the_watch_missed()
    {
        var (cache, first) = InformerCache<KubeNode>.Empty.Relist([N("a", "ua", "5"), N("b", "ub", "6"), N("c", "uc", "7")], "7");
        Assert.Equal(["a", "b", "c"], first.Select(d => Assert.IsType<InformerDelta<KubeNode>.Added>(d).Object.Name));
        // Meanwhile: a deleted, b changed, c deleted and created again under the same name, d added.
        var (after, deltas) = cache.Relist([N("b", "ub", "9"), N("c", "uc2", "10"), N("d", "ud", "11")], "12");
        Assert.Equal("12", after.ResourceVersion);
        Assert.Equal(["b", "c", "d"], after.Objects.Keys);
        Assert.Collection(deltas,
            d => Assert.Equal(("a", "ua"), AsDeleted(d)),
            d => Assert.Equal(("c", "uc"), AsDeleted(d)),
            d => Assert.Equal("9", Assert.IsType<InformerDelta<KubeNode>.Updated>(d).New.ResourceVersion),
            d => Assert.Equal("uc2", Assert.IsType<InformerDelta<KubeNode>.Added>(d).Object.Uid),
            d => Assert.Equal("d", Assert.IsType<InformerDelta<KubeNode>.Added>(d).Object.Name));
        Assert.Contains("not in the list at resourceVersion 12", deltas[0].Cause);
        // The same list again changes nothing.
        Assert.Empty(after.Relist([N("b", "ub", "9"), N("c", "uc2", "10"), N("d", "ud", "11")], "13").Deltas);
    }

    [Fact]
    public void Watch_events_follow_the_cache_and_move_the_resource_version_as_bookmarks_do()
    {
        var cache = InformerCache<KubeNode>.Empty;
        (cache, var added) = cache.Apply(WatchChange.Added, N("a", "ua", "3"));
        Assert.IsType<InformerDelta<KubeNode>.Added>(Assert.Single(added));
        (cache, var same) = cache.Apply(WatchChange.Modified, N("a", "ua", "3"));
        Assert.Empty(same);
        (cache, var replaced) = cache.Apply(WatchChange.Modified, N("a", "ua2", "4"));
        Assert.Equal(("a", "ua"), AsDeleted(replaced[0]));
        Assert.IsType<InformerDelta<KubeNode>.Added>(replaced[1]);
        Assert.Equal("4", cache.ResourceVersion);
        cache = cache.Bookmark("9");
        Assert.Equal("9", cache.ResourceVersion);
        (cache, var unknown) = cache.Apply(WatchChange.Deleted, N("x", "ux", "10"));
        Assert.Empty(unknown);
        Assert.Equal("10", cache.ResourceVersion);
        (cache, var deleted) = cache.Apply(WatchChange.Deleted, N("a", "ua2", "11"));
        Assert.Equal(("a", "ua2"), AsDeleted(Assert.Single(deleted)));
        Assert.Empty(cache.Objects);
    }

    [Fact]
    public void Backoff_doubles_from_the_minimum_to_the_maximum_within_the_jitter()
    {
        var settings = new InformerSettings(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(8), 0.25);
        var random = new Random(7);
        foreach (var (failures, nominal) in new[] { (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0) })
            for (var i = 0; i < 50; i++)
            {
                var wait = settings.Backoff(failures, random).TotalSeconds;
                Assert.InRange(wait, nominal * 0.75, nominal * 1.25);
            }
    }

    private static (string, string) AsDeleted(InformerDelta<KubeNode> delta)
    {
        var deleted = Assert.IsType<InformerDelta<KubeNode>.Deleted>(delta);
        return (deleted.Last.Name, deleted.Last.Uid);
    }
}

/// <summary>The informer over HTTP: KubernetesClient against a local API server in this process.</summary>
public sealed class InformerTests : IAsyncLifetime
{
    private LocalKubeApiServer _server = null!;
    private readonly ConcurrentQueue<object> _seen = new();
    private readonly CancellationTokenSource _stop = new();
    private Task _running = Task.CompletedTask;

    public async Task InitializeAsync() => _server = await LocalKubeApiServer.StartAsync();

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        await _running;
        await _server.DisposeAsync();
    }

    private const string Nodes = "/api/v1/nodes";

    private void Start(int pageSize = KubeSources.DefaultPageSize, TimeSpan? idle = null)
    {
        var informer = new Informer<KubeNode>(new NodeSource(_server.Client(), TimeSpan.FromSeconds(30), pageSize),
            new InformerSettings(TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(400), 0.2, idle), _seen.Enqueue);
        _running = informer.RunAsync(_stop.Token);
    }

    [Fact]
    public async Task Lists_then_watches_from_the_lists_resource_version_with_bookmarks_and_a_server_timeout()
    {
        _server.Put(LocalKubeApiServer.Node("n1", "10.0.1.11"));
        var listedAt = _server.ResourceVersion.ToString();
        Start();
        var synced = await SeenAsync<InformerSignals.Synced>(_ => true);
        Assert.Equal(listedAt, synced.ResourceVersion);
        Assert.Equal(new[] { "n1" }, synced.Keys.ToArray());
        await UntilAsync("a watch", () => _server.Watches(Nodes).Count == 1);
        var watch = _server.Watches(Nodes)[0];
        Assert.Equal((listedAt, true, "30"), (watch.ResourceVersion, watch.AllowWatchBookmarks, watch.TimeoutSeconds));
        _server.Put(LocalKubeApiServer.Node("n2", "10.0.1.12"));
        Assert.Equal("n2", (await SeenAsync<InformerDelta<KubeNode>.Added>(a => a.Object.Name == "n2")).Object.Name);
    }

    [Fact]
    public async Task A_list_is_read_in_pages_of_one_snapshot_and_starts_over_when_its_continue_token_expires()
    {
        for (var i = 1; i <= 5; i++) _server.Put(LocalKubeApiServer.Node($"n{i}", $"10.0.1.{10 + i}"));
        var listedAt = _server.ResourceVersion.ToString();
        _server.ExpireNextContinue = true;
        Start(pageSize: 2);
        var synced = await SeenAsync<InformerSignals.Synced>(_ => true);
        Assert.Equal(["n1", "n2", "n3", "n4", "n5"], synced.Keys.Order());
        Assert.Equal(listedAt, synced.ResourceVersion);
        // Page one, its continue refused (410 Expired), then three pages from the start: limit 2 on each, tokens followed.
        var lists = _server.Requests.Where(r => !r.Watch && r.Path == Nodes).ToList();
        Assert.Equal(["2"], lists.Select(r => r.Limit).Distinct());
        Assert.Equal([false, true, false, true, true], lists.Select(r => r.Continue is not null));
        await UntilAsync("a watch", () => _server.Watches(Nodes).Count == 1);
        Assert.Equal(listedAt, _server.Watches(Nodes)[0].ResourceVersion);
    }

    [Fact]
    public async Task A_watch_silent_past_the_idle_limit_is_opened_again_from_its_resource_version_and_a_talking_one_is_kept()
    {
        _server.Put(LocalKubeApiServer.Node("n1", "10.0.1.11"));
        Start(idle: TimeSpan.FromSeconds(1.5));
        await UntilAsync("a watch", () => _server.Watches(Nodes).Count == 1);
        // Bookmarks every 0.25 s for 3 s: the watch talks, so it is kept (the server's own timeout is 30 s).
        for (var i = 0; i < 12; i++)
        {
            _server.Bookmark();
            await Task.Delay(250);
        }
        Assert.Single(_server.Watches(Nodes));
        // Then silence: the informer gives the watch up and opens another from the last bookmark's resourceVersion.
        var last = _server.Bookmark().ToString();
        var silent = await SeenAsync<InformerSignals.Interrupted>(i => i.Why.Contains("silent for 1.5s"));
        Assert.StartsWith("watch failed: WatchSilentException", silent.Why);
        await UntilAsync("a second watch", () => _server.Watches(Nodes).Count == 2);
        Assert.Equal(last, _server.Watches(Nodes)[1].ResourceVersion);
        _server.Put(LocalKubeApiServer.Node("n2", "10.0.1.12"));
        await SeenAsync<InformerDelta<KubeNode>.Added>(a => a.Object.Name == "n2");
    }

    [Fact]
    public async Task A_dropped_connection_resumes_from_the_last_resource_version_and_a_bookmark_moves_it()
    {
        Start();
        await UntilAsync("a watch", () => _server.OpenWatches == 1);
        var lastEvent = _server.Put(LocalKubeApiServer.Node("n1", "10.0.1.11"));
        await SeenAsync<InformerDelta<KubeNode>.Added>(a => a.Object.Name == "n1");
        // Dropped: changes made while no watch is open come with the resumed watch, from the last event's resourceVersion.
        _server.RefuseWatches = true;
        _server.DropWatches();
        await SeenAsync<InformerSignals.Interrupted>(_ => true);
        _server.Put(LocalKubeApiServer.Node("n2", "10.0.1.12"));
        _server.RefuseWatches = false;
        await SeenAsync<InformerDelta<KubeNode>.Added>(a => a.Object.Name == "n2");
        var resumed = _server.Watches(Nodes).Last();
        Assert.Equal(lastEvent.ToString(), resumed.ResourceVersion);
        Assert.Single(_server.Requests, r => r.Path == Nodes && !r.Watch); // resumed, not re-listed

        // A bookmark moves the resourceVersion a resumed watch asks for, with no object event in between.
        await UntilAsync("the watch open again", () => _server.OpenWatches == 1);
        var bookmark = _server.Bookmark();
        await Task.Delay(300); // nothing to wait on: a bookmark yields no delta
        var before = _server.Watches(Nodes).Count;
        _server.DropWatches();
        await UntilAsync("the watch resumed after the bookmark", () => _server.Watches(Nodes).Count > before);
        Assert.Equal(bookmark.ToString(), _server.Watches(Nodes).Last().ResourceVersion);
    }

    [Fact]
    public async Task Gone_as_an_HTTP_status_relists_and_delivers_the_delete_the_watch_missed()
    {
        var n1 = LocalKubeApiServer.Node("n1", "10.0.1.11");
        _server.Put(n1);
        _server.Put(LocalKubeApiServer.Node("n2", "10.0.1.12"));
        Start();
        await UntilAsync("a watch", () => _server.OpenWatches == 1);
        _server.RefuseWatches = true;
        _server.DropWatches();
        await SeenAsync<InformerSignals.Interrupted>(_ => true);
        _server.Delete(n1); // while no watch is open
        _server.Compact(); // and the history that held the delete is gone: the next watch gets 410
        _server.RefuseWatches = false;
        var deleted = await SeenAsync<InformerDelta<KubeNode>.Deleted>(d => d.Last.Name == "n1");
        Assert.Contains("deleted while unwatched", deleted.Cause);
        Assert.Equal(2, _server.Requests.Count(r => r.Path == Nodes && !r.Watch));
        Assert.Contains(_seen, s => s is InformerSignals.Interrupted i && i.Why.Contains("HTTP 410"));
        Assert.DoesNotContain(_seen, s => s is InformerDelta<KubeNode>.Deleted d && d.Last.Name == "n2");
        await UntilAsync("the watch after the re-list", () => _server.OpenWatches == 1);
    }

    [Fact]
    public async Task Gone_as_an_error_event_relists_and_the_watch_follows_from_the_new_list()
    {
        _server.Put(LocalKubeApiServer.Node("n1", "10.0.1.11"));
        Start();
        await UntilAsync("a watch", () => _server.OpenWatches == 1);
        _server.Compact(tellOpenWatches: true);
        await SeenAsync<InformerSignals.Interrupted>(i => i.Why.Contains("ERROR event 410"));
        await UntilAsync("a re-list", () => _server.Requests.Count(r => r.Path == Nodes && !r.Watch) == 2);
        await UntilAsync("the watch after the re-list", () => _server.Watches(Nodes).Count == 2);
        Assert.Equal(_server.ResourceVersion.ToString(), _server.Watches(Nodes)[1].ResourceVersion);
        _server.Put(LocalKubeApiServer.Node("n3", "10.0.1.13"));
        await SeenAsync<InformerDelta<KubeNode>.Added>(a => a.Object.Name == "n3");
        Assert.DoesNotContain(_seen, s => s is InformerDelta<KubeNode>.Deleted);
    }

    [Fact]
    public async Task The_same_informer_follows_Namespaces_and_NetworkPolicies_for_the_cluster_wide_view()
    {
        var seen = new ConcurrentQueue<object>();
        var backoff = new InformerSettings(TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(400), 0.2);
        var namespaces = new Informer<KubeNamespace>(new NamespaceSource(_server.Client(), TimeSpan.FromSeconds(30)), backoff,
            seen.Enqueue);
        var policies = new Informer<KubeNetworkPolicy>(new NetworkPolicySource(_server.Client(), TimeSpan.FromSeconds(30)), backoff,
            seen.Enqueue);
        var shop = new V1Namespace
        {
            ApiVersion = "v1", Kind = "Namespace",
            Metadata = new V1ObjectMeta { Name = "shop", Uid = "uid-shop", Labels = new Dictionary<string, string> { ["team"] = "a" } },
        };
        var denyAll = new V1NetworkPolicy
        {
            ApiVersion = "networking.k8s.io/v1", Kind = "NetworkPolicy",
            Metadata = new V1ObjectMeta { Name = "deny-all", NamespaceProperty = "shop", Uid = "uid-deny" },
            Spec = new V1NetworkPolicySpec { PodSelector = new V1LabelSelector(), PolicyTypes = ["Ingress"] },
        };
        _server.Put(shop);
        _running = Task.WhenAll(namespaces.RunAsync(_stop.Token), policies.RunAsync(_stop.Token));
        await UntilAsync("both watches", () => _server.OpenWatches == 2);
        _server.Put(denyAll);
        await UntilAsync("the policy", () => seen.OfType<InformerDelta<KubeNetworkPolicy>.Added>().Any());
        var policy = seen.OfType<InformerDelta<KubeNetworkPolicy>.Added>().Single().Object;
        Assert.Equal(("shop/deny-all", "uid-deny"), (policy.Key, policy.Uid));
        Assert.Contains("\"policyTypes\":[\"Ingress\"]", policy.SpecJson);
        Assert.Equal("a", seen.OfType<InformerDelta<KubeNamespace>.Added>().Single().Object.Labels["team"]);
        // A policy deleted while its watch is refused, the history compacted: the re-list delivers the delete.
        _server.RefuseWatches = true;
        _server.DropWatches();
        _server.Delete(denyAll);
        _server.Compact();
        _server.RefuseWatches = false;
        await UntilAsync("the missed delete",
            () => seen.OfType<InformerDelta<KubeNetworkPolicy>.Deleted>().Any(d => d.Last.Name == "deny-all"));
        Assert.Empty(seen.OfType<InformerDelta<KubeNamespace>.Deleted>());
    }

    private async Task<T> SeenAsync<T>(Func<T, bool> match)
    {
        T? found = default;
        await UntilAsync(typeof(T).Name, () => (found = _seen.OfType<T>().FirstOrDefault(match)) is not null);
        return found!;
    }

    internal static async Task UntilAsync(string what, Func<bool> done, int seconds = 20)
    {
        var clock = Stopwatch.StartNew();
        while (!done())
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(seconds)) throw new TimeoutException($"not within {seconds} s: {what}");
            await Task.Delay(50);
        }
    }
}
