using Romana.Contracts.Cni;
using static Romana.Fuzz.FuzzFinding;

namespace Romana.Fuzz;

/// <summary>
/// The daemon socket's line, read as the daemon reads a request and as the plugin reads a reply. Decoding returns null for
/// what is not one (its documented refusal, which the daemon and the plugin each answer with an error); what it decodes must
/// encode to one line that decodes to the same.
/// </summary>
public static class DaemonProtocolTarget
{
    public static FuzzTarget Target { get; } = new("daemon-protocol",
        "one line of the daemon socket, decoded as a request and as a reply, and encoded back (DaemonProtocol)", Run);

    private static void Run(byte[] input)
    {
        if (DaemonProtocol.DecodeRequest(input) is { } request)
        {
            Require(request.Command is not null, "a request decoded without a command");
            var line = DaemonProtocol.Encode(request);
            Require(Array.IndexOf(line, (byte)'\n') == line.Length - 1, "an encoded request is not one line");
            var again = DaemonProtocol.DecodeRequest(line.AsSpan(0, line.Length - 1))
                ?? throw new FuzzFinding("an encoded request does not decode");
            Require(DaemonProtocol.Encode(again).AsSpan().SequenceEqual(line), "a request does not survive encoding and decoding");
        }
        if (DaemonProtocol.DecodeReply(input) is { } reply)
        {
            var line = DaemonProtocol.Encode(reply);
            Require(Array.IndexOf(line, (byte)'\n') == line.Length - 1, "an encoded reply is not one line");
            var again = DaemonProtocol.DecodeReply(line.AsSpan(0, line.Length - 1))
                ?? throw new FuzzFinding("an encoded reply does not decode");
            Require(again == reply, "a reply does not survive encoding and decoding");
        }
    }
}
