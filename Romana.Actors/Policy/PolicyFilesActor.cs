using System.Collections.Immutable;
using Akka.Actor;
using Akka.Event;

namespace Romana.Actors.Policy;

/// <summary>
/// The files policy source (<c>romana.policy.files</c>), one per node, for labs and tests where no API server exists: every
/// <paramref name="interval"/> it reads the folder (<see cref="PolicyFiles"/>) and the IPAM's pods (<paramref name="ipamPods"/>:
/// addresses, nodes, and the pod each allocation was made for), and sends what changed to the agents that asked for the view,
/// in the same protocol as the Kubernetes view (<see cref="PolicyMessages"/>). A file that cannot be read keeps its last good
/// content (a file half written is not a policy deleted) and is logged once per problem, naming the file and the field.
/// </summary>
public sealed class PolicyFilesActor : ReceiveActor, IWithTimers
{
    private readonly string _folder;
    private readonly Func<CancellationToken, Task<IReadOnlyList<IpamPod>>>? _ipamPods;
    private readonly TimeSpan _interval;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly string _epoch = Guid.NewGuid().ToString("N")[..12];
    private readonly HashSet<IActorRef> _agents = [];
    private readonly HashSet<string> _said = [];
    private ImmutableDictionary<string, FileRead> _files = ImmutableDictionary<string, FileRead>.Empty;
    private IReadOnlyList<IpamPod> _ipam = [];
    private PolicyView _view = PolicyView.Empty;
    private long _seq;
    private bool _reading;

    public PolicyFilesActor(string folder, Func<CancellationToken, Task<IReadOnlyList<IpamPod>>>? ipamPods, TimeSpan interval)
    {
        _folder = folder;
        _ipamPods = ipamPods;
        _interval = interval;
        Receive<Tick>(_ => StartRead());
        Receive<ReadDone>(OnRead);
        Receive<PolicyMessages.GetView>(_ =>
        {
            _agents.Add(Sender);
            Sender.Tell(new PolicyMessages.View(_epoch, _seq, _view));
        });
    }

    public static Props Props(string folder, Func<CancellationToken, Task<IReadOnlyList<IpamPod>>>? ipamPods, TimeSpan interval) =>
        Akka.Actor.Props.Create(() => new PolicyFilesActor(folder, ipamPods, interval));

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record Tick : INoSerializationVerificationNeeded;
    private readonly record struct FileRead(DateTime Stamp, PolicyFileContent Content);
    private sealed record ReadDone(ImmutableDictionary<string, FileRead> Files, ImmutableArray<string> Problems,
        IReadOnlyList<IpamPod>? Ipam, string? IpamProblem) : INoSerializationVerificationNeeded;

    protected override void PreStart()
    {
        _log.Info("Policy files: reading {0} every {1:0.###} s{2}", _folder, _interval.TotalSeconds,
            _ipamPods is null ? "" : "; pod addresses from the IPAM");
        StartRead();
        Timers.StartPeriodicTimer("read", new Tick(), _interval);
    }

    private void StartRead()
    {
        if (_reading) return;
        _reading = true;
        var (folder, known, ipam) = (_folder, _files, _ipamPods);
        Task.Run(async () =>
        {
            var problems = ImmutableArray.CreateBuilder<string>();
            var files = ImmutableDictionary.CreateBuilder<string, FileRead>();
            foreach (var path in PolicyFiles.List(folder))
            {
                try
                {
                    var stamp = File.GetLastWriteTimeUtc(path);
                    files[path] = known.TryGetValue(path, out var same) && same.Stamp == stamp
                        ? same
                        : new FileRead(stamp, PolicyFiles.Read(path));
                }
                catch (Exception e) when (e is PolicyFormatException or IOException or UnauthorizedAccessException)
                {
                    problems.Add($"{path}: {(e is PolicyFormatException ? "" : $"{e.GetType().Name}: ")}{e.Message}");
                    if (known.TryGetValue(path, out var last)) files[path] = last;
                }
            }
            IReadOnlyList<IpamPod>? pods = files.Count == 0 ? [] : null;
            string? ipamProblem = null;
            if (ipam is not null && files.Count > 0) // no file, no policy: the IPAM is not asked (a lab starting, a node without policy)
            {
                try
                {
                    pods = await ipam(CancellationToken.None);
                }
                catch (Exception e)
                {
                    ipamProblem = $"{e.GetType().Name}: {e.Message}";
                }
            }
            return new ReadDone(files.ToImmutable(), problems.ToImmutable(), pods, ipamProblem);
        }).PipeTo(Self);
    }

    private void OnRead(ReadDone read)
    {
        _reading = false;
        foreach (var problem in read.Problems.Where(_said.Add))
            _log.Warning("Policy files: {0}; its last good content (if any) stays in force", problem);
        if (read.IpamProblem is { } why && _said.Add(why))
            _log.Warning("Policy files: the IPAM's pods could not be read ({0}); the last ones read stay", why);
        var changedFiles = FileChanges(_files, read.Files);
        _files = read.Files;
        if (read.Ipam is not null) _ipam = read.Ipam;
        var next = PolicyFiles.View(_files.OrderBy(f => f.Key, StringComparer.Ordinal).Select(f => f.Value.Content), _ipam);
        var cause = changedFiles.Length > 0 ? $"files {string.Join(", ", changedFiles)} changed" : "the IPAM's pods changed";
        var changes = PolicyFiles.Diff(_view, next, cause);
        if (changes.IsEmpty) return;
        _view = next;
        _seq++;
        var message = new PolicyMessages.Changed(_epoch, _seq, changes);
        foreach (var agent in _agents) agent.Tell(message);
    }

    private static ImmutableArray<string> FileChanges(ImmutableDictionary<string, FileRead> before,
        ImmutableDictionary<string, FileRead> after) =>
        [.. after.Keys.Union(before.Keys)
            .Where(k => !before.TryGetValue(k, out var a) || !after.TryGetValue(k, out var b) || a.Stamp != b.Stamp)
            .Select(Path.GetFileName).Order(StringComparer.Ordinal)!];
}
