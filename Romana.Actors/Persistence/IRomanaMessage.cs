namespace Romana.Actors.Persistence;

/// <summary>
/// A message that crosses the network between members of a cluster: bound to <see cref="RomanaSerializer"/> (JSON, with its
/// type's short name and version as manifest, as events), so that members of different builds can read it.
/// </summary>
public interface IRomanaMessage;
