using System.Collections.Immutable;
using System.Numerics;
using Romana.Actors.Addressing;

namespace Romana.Actors.Ipam;

/// <summary>One block of a node: which of its addresses are allocated and which are fenced off by reservations.</summary>
public sealed record BlockUsage
{
    private readonly ImmutableArray<ulong> _allocated;
    private readonly ImmutableArray<ulong> _fenced;

    private BlockUsage(Ipv4Cidr block, ImmutableArray<ulong> allocated, ImmutableArray<ulong> fenced)
    {
        Block = block;
        _allocated = allocated;
        _fenced = fenced;
        Allocated = Count(allocated);
        Fenced = Count(fenced);
    }

    public Ipv4Cidr Block { get; }
    public int Allocated { get; }
    public int Fenced { get; }
    public int Capacity => (int)Block.Size;
    public bool HasRoom => Allocated + Fenced < Capacity;

    public static BlockUsage Empty(Ipv4Cidr block)
    {
        var words = ImmutableArray.Create(new ulong[Math.Max(1, (int)(block.Size / 64))]);
        return new BlockUsage(block, words, words);
    }

    /// <summary>The lowest address that is neither allocated nor fenced, if any.</summary>
    public Ipv4? LowestFree()
    {
        for (var w = 0; w < _allocated.Length; w++)
        {
            var taken = _allocated[w] | _fenced[w];
            if (taken == ulong.MaxValue) continue;
            var index = w * 64 + BitOperations.TrailingZeroCount(~taken);
            return index < Capacity ? new Ipv4(Block.Network.Value + (uint)index) : null;
        }
        return null;
    }

    public bool IsAllocated(Ipv4 address) => Test(_allocated, Offset(address));

    /// <summary>The allocated addresses of this block that lie in <paramref name="range"/>.</summary>
    public IEnumerable<Ipv4> AllocatedIn(Ipv4Cidr range)
    {
        if (!range.Overlaps(Block)) yield break;
        var inner = range.Contains(Block) ? Block : range;
        for (var a = inner.First.Value; ; a++)
        {
            if (Test(_allocated, Offset(new Ipv4(a)))) yield return new Ipv4(a);
            if (a == inner.Last.Value) break;
        }
    }

    public BlockUsage WithAllocated(Ipv4 address, bool allocated)
    {
        var offset = Offset(address);
        var word = _allocated[offset / 64];
        var bit = 1UL << (offset % 64);
        return new BlockUsage(Block, _allocated.SetItem(offset / 64, allocated ? word | bit : word & ~bit), _fenced);
    }

    /// <summary>Recomputes the fenced addresses from the node's whole set of fences.</summary>
    public BlockUsage WithFences(IEnumerable<Ipv4Cidr> fences)
    {
        var bits = new ulong[_fenced.Length];
        foreach (var fence in fences)
        {
            if (!fence.Overlaps(Block)) continue;
            var inner = fence.Contains(Block) ? Block : fence;
            var from = Offset(inner.First);
            for (var i = 0; i < (int)inner.Size; i++) bits[(from + i) / 64] |= 1UL << ((from + i) % 64);
        }
        return new BlockUsage(Block, _allocated, ImmutableArray.Create(bits));
    }

    private int Offset(Ipv4 address) => (int)(address.Value - Block.Network.Value);
    private static bool Test(ImmutableArray<ulong> bits, int offset) => (bits[offset / 64] & (1UL << (offset % 64))) != 0;
    private static int Count(ImmutableArray<ulong> bits)
    {
        var count = 0;
        foreach (var word in bits) count += BitOperations.PopCount(word);
        return count;
    }
}
