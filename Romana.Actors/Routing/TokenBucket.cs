namespace Romana.Actors.Routing;

/// <summary>
/// EC2's request-rate limit for mutating calls, kept on the client side: a bucket of <paramref name="Capacity"/> tokens
/// refilled at <paramref name="PerSecond"/> (EC2: 50 and 5 per second, per account and region). A call takes one token;
/// plan work keeps a reserve that only repairs may spend. The bucket as of <paramref name="At"/>, a pure value.
/// </summary>
public sealed record TokenBucket(double Capacity, double PerSecond, double Tokens, DateTimeOffset At)
{
    public static TokenBucket Full(double capacity, double perSecond, DateTimeOffset now) => new(capacity, perSecond, capacity, now);

    /// <summary>The bucket at <paramref name="now"/>, refilled for the time since <see cref="At"/>.</summary>
    public TokenBucket Refilled(DateTimeOffset now) =>
        now <= At ? this : this with { Tokens = Math.Min(Capacity, Tokens + (now - At).TotalSeconds * PerSecond), At = now };

    /// <summary>Whether a token can be taken at <paramref name="now"/> with <paramref name="keep"/> tokens left over.</summary>
    public bool CanTake(DateTimeOffset now, double keep) => Refilled(now).Tokens >= 1 + keep;

    public TokenBucket Take(DateTimeOffset now)
    {
        var refilled = Refilled(now);
        return refilled with { Tokens = refilled.Tokens - 1 };
    }

    /// <summary>EC2 throttled a call anyway (the account's bucket is shared with other clients): start again from empty.</summary>
    public TokenBucket Emptied(DateTimeOffset now) => Refilled(now) with { Tokens = 0 };

    /// <summary>How long until a token can be taken with <paramref name="keep"/> left over; zero when one can now.</summary>
    public TimeSpan Until(DateTimeOffset now, double keep)
    {
        var missing = 1 + keep - Refilled(now).Tokens;
        if (missing <= 0) return TimeSpan.Zero;
        // Never sooner than a millisecond: a timer due at once would find the token a rounding error short.
        return PerSecond <= 0 ? TimeSpan.MaxValue : TimeSpan.FromMilliseconds(Math.Max(1, Math.Ceiling(missing / PerSecond * 1000)));
    }
}
