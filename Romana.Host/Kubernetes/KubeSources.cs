using System.Collections.Immutable;
using System.Net;
using System.Runtime.CompilerServices;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Romana.Actors.Kubernetes;

namespace Romana.Host.Kubernetes;

/// <summary>
/// KubernetesClient (21.x) as Romana's <see cref="IKubeSource{T}"/>: a list, then <c>watch=true</c> from a resourceVersion
/// with <c>allowWatchBookmarks=true</c> and the server-side <c>timeoutSeconds</c>. 410 Gone, as the HTTP status of the watch
/// request or as an ERROR event whose Status has code 410, becomes <see cref="ResourceExpiredException"/>.
/// </summary>
public abstract class KubeSource<TObject, TModel>(string what, TimeSpan watchTimeout, int pageSize) : IKubeSource<TObject>
    where TObject : IKubeObject where TModel : IKubernetesObject<V1ObjectMeta>
{
    /// <summary>A list whose continue token expires (the API server compacted past it) starts over, this many times at most.</summary>
    private const int ListAttempts = 3;

    public string What { get; } = what;

    protected int TimeoutSeconds { get; } = Math.Max(1, (int)watchTimeout.TotalSeconds);

    /// <summary>
    /// The list in pages of <c>limit</c> objects, following <c>continue</c>: every page is of the first page's snapshot, and the
    /// list's resourceVersion is that snapshot's. One response for 100,000 pods would be held whole by the API server and by
    /// the daemon; pages bound both.
    /// </summary>
    public async Task<(IReadOnlyList<TObject> Items, string ResourceVersion)> ListAsync(CancellationToken cancellation)
    {
        for (var attempt = 1; ; attempt++)
        {
            var items = new List<TObject>();
            string? token = null, version = null;
            try
            {
                do
                {
                    var page = await ListPageAsync(pageSize, token, cancellation);
                    items.AddRange(page.Items.Select(Convert));
                    (version, token) = (page.ResourceVersion, page.Continue);
                } while (!string.IsNullOrEmpty(token));
                return (items, version ?? "");
            }
            catch (HttpOperationException e) when (e.Response?.StatusCode == HttpStatusCode.Gone && token is not null
                && attempt < ListAttempts)
            {
                // The snapshot of the first page expired before the last page was read: a fresh list from the start.
            }
        }
    }

    public async IAsyncEnumerable<WatchItem<TObject>> WatchAsync(string resourceVersion,
        [EnumeratorCancellation] CancellationToken cancellation)
    {
        Exception? error = null;
        var stream = WatchModelsAsync(resourceVersion, e => error ??= e, cancellation).GetAsyncEnumerator(cancellation);
        try
        {
            while (true)
            {
                try
                {
                    if (!await stream.MoveNextAsync()) break;
                }
                catch (HttpOperationException e) when (e.Response?.StatusCode == HttpStatusCode.Gone)
                {
                    throw new ResourceExpiredException($"HTTP 410 Gone from the watch of {What}");
                }
                ThrowIfError(error);
                var (type, model) = stream.Current;
                switch (type)
                {
                    case WatchEventType.Bookmark when model?.Metadata?.ResourceVersion is { Length: > 0 } version:
                        yield return new WatchItem<TObject>.Bookmark(version);
                        break;
                    case WatchEventType.Added or WatchEventType.Modified or WatchEventType.Deleted when model?.Metadata is not null:
                        yield return new WatchItem<TObject>.Change(type switch
                        {
                            WatchEventType.Added => WatchChange.Added,
                            WatchEventType.Modified => WatchChange.Modified,
                            _ => WatchChange.Deleted,
                        }, Convert(model));
                        break;
                }
            }
            ThrowIfError(error);
        }
        finally
        {
            await stream.DisposeAsync();
        }
    }

    private void ThrowIfError(Exception? error)
    {
        switch (error)
        {
            case null: return;
            case KubernetesException { Status.Code: 410 } gone:
                throw new ResourceExpiredException($"ERROR event 410 in the watch of {What}: {gone.Status.Message}");
            default:
                throw new IOException($"the watch of {What} reported {error.GetType().Name}: {error.Message}", error);
        }
    }

    protected abstract Task<ListPage<TModel>> ListPageAsync(int limit, string? continueToken, CancellationToken cancellation);

    protected abstract IAsyncEnumerable<(WatchEventType, TModel)> WatchModelsAsync(string resourceVersion, Action<Exception> onError,
        CancellationToken cancellation);

    protected abstract TObject Convert(TModel model);
}

/// <summary>One page of a list: its objects, the snapshot's resourceVersion, and the token of the next page (none: the last).</summary>
public sealed record ListPage<TModel>(IEnumerable<TModel> Items, string? ResourceVersion, string? Continue);

public static class KubeSources
{
    /// <summary>Objects per page of a list (<c>romana.kubernetes.list-page-size</c>); kubectl and client-go use 500.</summary>
    public const int DefaultPageSize = 500;
}

/// <summary>Every Node of the cluster.</summary>
public sealed class NodeSource(IKubernetes client, TimeSpan watchTimeout, int pageSize = KubeSources.DefaultPageSize)
    : KubeSource<KubeNode, V1Node>("Nodes", watchTimeout, pageSize)
{
    protected override async Task<ListPage<V1Node>> ListPageAsync(int limit, string? continueToken, CancellationToken cancellation)
    {
        var list = await client.CoreV1.ListNodeAsync(continueParameter: continueToken, limit: limit, cancellationToken: cancellation);
        return new(list.Items ?? [], list.Metadata?.ResourceVersion, list.Metadata?.ContinueProperty);
    }

    protected override IAsyncEnumerable<(WatchEventType, V1Node)> WatchModelsAsync(string resourceVersion, Action<Exception> onError,
        CancellationToken cancellation) =>
        client.CoreV1.WatchListNodeAsync(allowWatchBookmarks: true, resourceVersion: resourceVersion, timeoutSeconds: TimeoutSeconds,
            onError: onError, cancellationToken: cancellation);

    protected override KubeNode Convert(V1Node node) => new(node.Metadata.Name ?? "", node.Metadata.Uid ?? "",
        node.Metadata.ResourceVersion ?? "",
        node.Metadata.Labels is { } labels && labels.TryGetValue(KubeNode.ZoneLabel, out var zone) ? zone : null, node.Spec?.ProviderID,
        [.. (node.Status?.Addresses ?? []).Where(a => a.Type == "InternalIP" && a.Address is not null).Select(a => a.Address)]);
}

/// <summary>The Pods of the cluster, or those bound to one node (<c>fieldSelector=spec.nodeName=N</c>).</summary>
public sealed class PodSource(IKubernetes client, TimeSpan watchTimeout, string? node, int pageSize = KubeSources.DefaultPageSize)
    : KubeSource<KubePod, V1Pod>(node is null ? "Pods" : $"Pods on node {node}", watchTimeout, pageSize)
{
    private readonly string? _selector = node is null ? null : $"spec.nodeName={node}";

    protected override async Task<ListPage<V1Pod>> ListPageAsync(int limit, string? continueToken, CancellationToken cancellation)
    {
        var list = await client.CoreV1.ListPodForAllNamespacesAsync(continueParameter: continueToken, fieldSelector: _selector,
            limit: limit, cancellationToken: cancellation);
        return new(list.Items ?? [], list.Metadata?.ResourceVersion, list.Metadata?.ContinueProperty);
    }

    protected override IAsyncEnumerable<(WatchEventType, V1Pod)> WatchModelsAsync(string resourceVersion, Action<Exception> onError,
        CancellationToken cancellation) =>
        client.CoreV1.WatchListPodForAllNamespacesAsync(allowWatchBookmarks: true, fieldSelector: _selector,
            resourceVersion: resourceVersion, timeoutSeconds: TimeoutSeconds, onError: onError, cancellationToken: cancellation);

    protected override KubePod Convert(V1Pod pod) => new(pod.Metadata.NamespaceProperty ?? "default", pod.Metadata.Name ?? "",
        pod.Metadata.Uid ?? "", pod.Metadata.ResourceVersion ?? "", pod.Spec?.NodeName,
        (pod.Metadata.Labels ?? new Dictionary<string, string>()).ToImmutableSortedDictionary(StringComparer.Ordinal), pod.Status?.PodIP);
}

/// <summary>Every Namespace of the cluster, with its labels.</summary>
public sealed class NamespaceSource(IKubernetes client, TimeSpan watchTimeout, int pageSize = KubeSources.DefaultPageSize)
    : KubeSource<KubeNamespace, V1Namespace>("Namespaces", watchTimeout, pageSize)
{
    protected override async Task<ListPage<V1Namespace>> ListPageAsync(int limit, string? continueToken,
        CancellationToken cancellation)
    {
        var list = await client.CoreV1.ListNamespaceAsync(continueParameter: continueToken, limit: limit,
            cancellationToken: cancellation);
        return new(list.Items ?? [], list.Metadata?.ResourceVersion, list.Metadata?.ContinueProperty);
    }

    protected override IAsyncEnumerable<(WatchEventType, V1Namespace)> WatchModelsAsync(string resourceVersion,
        Action<Exception> onError, CancellationToken cancellation) =>
        client.CoreV1.WatchListNamespaceAsync(allowWatchBookmarks: true, resourceVersion: resourceVersion,
            timeoutSeconds: TimeoutSeconds, onError: onError, cancellationToken: cancellation);

    protected override KubeNamespace Convert(V1Namespace model) => new(model.Metadata.Name ?? "", model.Metadata.Uid ?? "",
        model.Metadata.ResourceVersion ?? "",
        (model.Metadata.Labels ?? new Dictionary<string, string>()).ToImmutableSortedDictionary(StringComparer.Ordinal));
}

/// <summary>Every NetworkPolicy of the cluster (networking.k8s.io/v1), its spec as JSON.</summary>
public sealed class NetworkPolicySource(IKubernetes client, TimeSpan watchTimeout, int pageSize = KubeSources.DefaultPageSize)
    : KubeSource<KubeNetworkPolicy, V1NetworkPolicy>("NetworkPolicies", watchTimeout, pageSize)
{
    protected override async Task<ListPage<V1NetworkPolicy>> ListPageAsync(int limit, string? continueToken,
        CancellationToken cancellation)
    {
        var list = await client.NetworkingV1.ListNetworkPolicyForAllNamespacesAsync(continueParameter: continueToken, limit: limit,
            cancellationToken: cancellation);
        return new(list.Items ?? [], list.Metadata?.ResourceVersion, list.Metadata?.ContinueProperty);
    }

    protected override IAsyncEnumerable<(WatchEventType, V1NetworkPolicy)> WatchModelsAsync(string resourceVersion,
        Action<Exception> onError, CancellationToken cancellation) =>
        client.NetworkingV1.WatchListNetworkPolicyForAllNamespacesAsync(allowWatchBookmarks: true, resourceVersion: resourceVersion,
            timeoutSeconds: TimeoutSeconds, onError: onError, cancellationToken: cancellation);

    protected override KubeNetworkPolicy Convert(V1NetworkPolicy model) => new(model.Metadata.NamespaceProperty ?? "default",
        model.Metadata.Name ?? "", model.Metadata.Uid ?? "", model.Metadata.ResourceVersion ?? "", KubernetesJson.Serialize(model.Spec));
}
