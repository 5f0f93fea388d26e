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

    public static async Task<int> RunAsync(Func<Task<int>> action)
    {
        try
        {
            return await action();
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
            Console.Error.WriteLine($"romana: unexpected {e.GetType().Name}: {Dataplane.Echo.Capped(e.Message)}");
            return Failed;
        }
    }
}
