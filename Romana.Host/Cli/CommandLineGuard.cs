using Romana.Actors.Configuration;
using Romana.Actors.Ipam;
using Romana.Actors.Topology;
using Romana.Host.Documents;

namespace Romana.Host.Cli;

/// <summary>Exit codes, and the one place where an exception becomes a one-line message instead of a stack trace.</summary>
public static class CommandLineGuard
{
    public const int Ok = 0;
    public const int Failed = 1;
    public const int BadInput = 2;

    /// <summary>
    /// A command that does a finite piece of work: SIGTERM, Ctrl-C and SIGQUIT cancel the token it is given (see
    /// <see cref="Interruption"/>), and the command then ends with one line and 128 plus the signal's number, whatever it
    /// was doing.
    /// </summary>
    public static async Task<int> RunInterruptibleAsync(Func<CancellationToken, Task<int>> action)
    {
        using var interruption = Interruption.Register();
        var exit = await RunAsync(() => action(interruption.Token), interruption);
        if (interruption.Signal is null) return exit;
        interruption.Report();
        return interruption.ExitCode;
    }

    public static Task<int> RunAsync(Func<Task<int>> action) => RunAsync(action, null);

    private static async Task<int> RunAsync(Func<Task<int>> action, Interruption? interruption)
    {
        try
        {
            return await action();
        }
        // Whatever an interrupted command was doing when it stopped, the interruption is what to report.
        catch (Exception) when (interruption?.Signal is not null)
        {
            return Failed;
        }
        catch (Exception e) when (e is ConfigurationError or TopologyException or DocumentException or FileNotFoundException)
        {
            Console.Error.WriteLine($"romana: {e.Message}");
            return BadInput;
        }
        catch (IpamStartException e)
        {
            Console.Error.WriteLine($"romana: cannot start: {e.Error}");
            return Failed;
        }
        catch (Exception e) when (e is Dataplane.DaemonStartException or Persistence.JournalUnavailableException)
        {
            Console.Error.WriteLine($"romana: cannot start: {e.Message}");
            return Failed;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"romana: unexpected {e.GetType().Name}: {Romana.Contracts.Cni.Printable.Text(e.Message)}");
            // A bug report needs where it came from; a user sees one line unless asking for more.
            if (Environment.GetEnvironmentVariable("ROMANA_TRACE") is "1" or "true") Console.Error.WriteLine(e);
            return Failed;
        }
    }
}
