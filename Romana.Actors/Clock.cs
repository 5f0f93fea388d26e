namespace Romana.Actors;

/// <summary>The clock is a port: production reads the system clock, simulations and tests drive their own.</summary>
public interface IClock
{
    DateTimeOffset Now { get; }
}

public sealed class SystemClock : IClock
{
    public static readonly SystemClock Instance = new();
    public DateTimeOffset Now => DateTimeOffset.UtcNow;
}

/// <summary>The time of an actor system's scheduler: virtual under a test scheduler, so simulated minutes pass in moments.</summary>
public sealed class SchedulerClock(Akka.Actor.IScheduler scheduler) : IClock
{
    public DateTimeOffset Now => scheduler.Now;
}
