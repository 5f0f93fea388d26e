using System.Text.Json;

namespace Romana.Host.Lab;

/// <summary>
/// What <c>romana lab up</c> made, in /run/romana-lab/state.json: written first (so <c>down</c> finds a lab that failed half
/// way) and again as each part comes up. <c>down</c> needs none of it to clean up: every namespace carries the prefix.
/// </summary>
public sealed record LabState(LabOptions Options, string Phase, int Ec2Pid, IReadOnlyDictionary<string, int> DaemonPids,
    IReadOnlyDictionary<string, string> PodIps)
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    public void Save()
    {
        Directory.CreateDirectory(LabLayout.RunFolder);
        var temporary = LabLayout.StatePath + ".new";
        File.WriteAllText(temporary, JsonSerializer.Serialize(this, Json));
        File.Move(temporary, LabLayout.StatePath, overwrite: true);
    }

    public static LabState? Load()
    {
        if (!File.Exists(LabLayout.StatePath)) return null;
        try
        {
            return JsonSerializer.Deserialize<LabState>(File.ReadAllText(LabLayout.StatePath), Json);
        }
        catch (JsonException)
        {
            return null;
        }
    }

}
