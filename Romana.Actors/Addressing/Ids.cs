namespace Romana.Actors.Addressing;

// Strongly typed names, so a node can never be passed where a subnet is expected.

public readonly record struct ZoneName(string Value) : IComparable<ZoneName>
{
    public int CompareTo(ZoneName other) => string.CompareOrdinal(Value, other.Value);
    public override string ToString() => Value;
}

public readonly record struct SubnetId(string Value) : IComparable<SubnetId>
{
    public int CompareTo(SubnetId other) => string.CompareOrdinal(Value, other.Value);
    public override string ToString() => Value;
}

public readonly record struct NodeName(string Value) : IComparable<NodeName>
{
    public int CompareTo(NodeName other) => string.CompareOrdinal(Value, other.Value);
    public override string ToString() => Value;
}

/// <summary>What an address is allocated for: for CNI, the container id and interface name.</summary>
public readonly record struct AllocationKey(string Value) : IComparable<AllocationKey>
{
    public int CompareTo(AllocationKey other) => string.CompareOrdinal(Value, other.Value);
    public override string ToString() => Value;
}
