namespace Romana.Actors.Ipam;

public enum IpamErrorCode
{
    /// <summary>Malformed or impossible input.</summary>
    Invalid,
    /// <summary>Unknown node, key, address or reservation.</summary>
    NotFound,
    /// <summary>The key belongs to another node, or a reservation would cover allocated addresses.</summary>
    Conflict,
    /// <summary>No address left for that node.</summary>
    Exhausted,
    /// <summary>The journal or an actor did not answer: nothing was handed out.</summary>
    Unavailable,
}

/// <summary>An error a user can act on: a code for scripts and a sentence naming the field and the value.</summary>
public sealed record IpamError(IpamErrorCode Code, string Message)
{
    public string CodeText => Code switch
    {
        IpamErrorCode.Invalid => "invalid",
        IpamErrorCode.NotFound => "not-found",
        IpamErrorCode.Conflict => "conflict",
        IpamErrorCode.Exhausted => "exhausted",
        _ => "unavailable",
    };

    public static IpamError Invalid(string message) => new(IpamErrorCode.Invalid, message);
    public static IpamError NotFound(string message) => new(IpamErrorCode.NotFound, message);
    public static IpamError Conflict(string message) => new(IpamErrorCode.Conflict, message);
    public static IpamError Exhausted(string message) => new(IpamErrorCode.Exhausted, message);
    public static IpamError Unavailable(string message) => new(IpamErrorCode.Unavailable, message);

    public override string ToString() => $"{CodeText}: {Message}";
}
