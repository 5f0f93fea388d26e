using System.Collections.Immutable;
using System.Runtime.CompilerServices;
using Akka.Actor;

namespace Romana.Actors.Kubernetes;

/// <summary>One line of a watch stream, as the adapter reads it.</summary>
public abstract record WatchItem<T> where T : IKubeObject
{
    public sealed record Change(WatchChange Kind, T Object) : WatchItem<T>;
    /// <summary>BOOKMARK: the stream is current up to <paramref name="ResourceVersion"/>.</summary>
    public sealed record Bookmark(string ResourceVersion) : WatchItem<T>;
}

/// <summary>The resourceVersion asked for is too old (410 Gone, as an HTTP status or as an ERROR watch event): re-list.</summary>
public sealed class ResourceExpiredException(string message) : Exception(message);

/// <summary>The port to the API server for one kind: a list, and a watch from a resourceVersion (KubernetesClient in the host).</summary>
public interface IKubeSource<T> where T : IKubeObject
{
    /// <summary>"nodes", "pods on node n1": how the log names what is watched.</summary>
    string What { get; }

    Task<(IReadOnlyList<T> Items, string ResourceVersion)> ListAsync(CancellationToken cancellation);

    /// <summary>
    /// Watch events after <paramref name="resourceVersion"/>, with bookmarks; ends when the server closes the stream (its
    /// timeout). Throws <see cref="ResourceExpiredException"/> on 410 Gone, anything else on a broken connection.
    /// </summary>
    IAsyncEnumerable<WatchItem<T>> WatchAsync(string resourceVersion, CancellationToken cancellation);
}

/// <summary>What an informer tells its consumer besides deltas.</summary>
public static class InformerSignals
{
    /// <summary>A list (or re-list) is applied: the cache holds exactly <paramref name="Keys"/>; the watch follows.</summary>
    public sealed record Synced(string What, ImmutableArray<string> Keys, string ResourceVersion) : INoSerializationVerificationNeeded;
    /// <summary>The watch is down (a broken connection, a failed list): the cache may be stale until the next Synced or event.</summary>
    public sealed record Interrupted(string What, string Why, TimeSpan RetryIn) : INoSerializationVerificationNeeded;
}

/// <summary>
/// Backoff between reconnects: doubled from <see cref="Min"/> up to <see cref="Max"/>, each wait ± <see cref="Jitter"/>.
/// A watch silent for <see cref="Idle"/> (nothing, not even a bookmark) is taken as broken and reconnected: a connection
/// that died without a FIN or RST (a NAT or load balancer forgot it) would otherwise wait forever, since the server's own
/// timeout closes a stream the client can no longer hear. Null: no limit.
/// </summary>
public sealed record InformerSettings(TimeSpan Min, TimeSpan Max, double Jitter, TimeSpan? Idle = null)
{
    public static InformerSettings Default { get; } = new(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30), 0.2);

    public TimeSpan Backoff(int failures, Random random)
    {
        var doubled = Min.TotalMilliseconds * Math.Pow(2, Math.Min(failures - 1, 30));
        var wait = Math.Min(doubled, Max.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(wait * (1 + Jitter * (random.NextDouble() * 2 - 1)));
    }
}

/// <summary>
/// List, then watch from the list's resourceVersion; bookmarks and events move the resourceVersion; a watch the server
/// ends is resumed at once from the last resourceVersion; a broken connection is resumed from it after a backoff; 410 Gone
/// re-lists and reconciles against the cache (<see cref="InformerCache{T}.Relist"/>: a delete missed meanwhile is delivered).
/// Every delta and signal goes to <paramref name="emit"/> in order.
/// </summary>
public sealed class Informer<T>(IKubeSource<T> source, InformerSettings settings, Action<object> emit) where T : IKubeObject
{
    private readonly Random _random = new();

    public InformerCache<T> Cache { get; private set; } = InformerCache<T>.Empty;

    public async Task RunAsync(CancellationToken cancellation)
    {
        var failures = 0;
        var listed = false;
        while (!cancellation.IsCancellationRequested)
        {
            try
            {
                if (!listed)
                {
                    var (items, version) = await source.ListAsync(cancellation);
                    var (cache, deltas) = Cache.Relist(items, version);
                    Cache = cache;
                    foreach (var delta in deltas) emit(delta);
                    emit(new InformerSignals.Synced(source.What, [.. cache.Objects.Keys], version));
                    listed = true;
                }
                using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
                if (settings.Idle is { } limit) idle.CancelAfter(limit);
                await foreach (var item in WatchUntilSilentAsync(idle, cancellation))
                {
                    if (settings.Idle is { } again) idle.CancelAfter(again);
                    failures = 0;
                    switch (item)
                    {
                        case WatchItem<T>.Bookmark bookmark:
                            Cache = Cache.Bookmark(bookmark.ResourceVersion);
                            break;
                        case WatchItem<T>.Change change:
                            var (cache, deltas) = Cache.Apply(change.Kind, change.Object);
                            Cache = cache;
                            foreach (var delta in deltas) emit(delta);
                            break;
                    }
                }
                failures = 0; // the server ended the watch (its timeout): resume at once
            }
            catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
            {
                return;
            }
            catch (ResourceExpiredException expired)
            {
                emit(new InformerSignals.Interrupted(source.What,
                    $"resourceVersion {Cache.ResourceVersion} expired ({expired.Message}): re-listing", TimeSpan.Zero));
                listed = false;
            }
            catch (Exception e)
            {
                failures++;
                var wait = settings.Backoff(failures, _random);
                emit(new InformerSignals.Interrupted(source.What, $"{(listed ? "watch" : "list")} failed: {e.GetType().Name}: {e.Message}",
                    wait));
                try
                {
                    await Task.Delay(wait, cancellation);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    /// <summary>The watch from the cache's resourceVersion, ended by <paramref name="idle"/> firing as a silent watch.</summary>
    private async IAsyncEnumerable<WatchItem<T>> WatchUntilSilentAsync(CancellationTokenSource idle,
        [EnumeratorCancellation] CancellationToken cancellation)
    {
        var stream = source.WatchAsync(Cache.ResourceVersion, idle.Token).GetAsyncEnumerator(idle.Token);
        try
        {
            while (true)
            {
                bool more;
                try
                {
                    more = await stream.MoveNextAsync();
                }
                catch (OperationCanceledException) when (idle.IsCancellationRequested && !cancellation.IsCancellationRequested)
                {
                    throw new WatchSilentException(settings.Idle ?? TimeSpan.Zero);
                }
                if (!more) yield break;
                yield return stream.Current;
            }
        }
        finally
        {
            await stream.DisposeAsync();
        }
    }
}

/// <summary>A watch that heard nothing for the informer's idle limit.</summary>
public sealed class WatchSilentException(TimeSpan silent) : Exception($"the watch was silent for {silent.TotalSeconds:0.#}s");

/// <summary>An informer run for an actor: its deltas and signals become the actor's messages, and it stops with the actor.</summary>
public static class InformerRun
{
    public static CancellationTokenSource Start(IActorRef self, Func<Action<object>, CancellationToken, Task> run)
    {
        var stop = new CancellationTokenSource();
        var token = stop.Token;
        _ = Task.Run(() => run(message => self.Tell(message), token), token);
        return stop;
    }

    public static void Stop(CancellationTokenSource? stop)
    {
        stop?.Cancel();
        stop?.Dispose();
    }
}
