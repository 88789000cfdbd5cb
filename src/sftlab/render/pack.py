"""Best-fit-decreasing bin packing of sample lengths into rows of ``max_length`` tokens.

Longest samples first, each into the fullest row it still fits, which leaves few
gaps on the long-tailed length distributions of SFT data::

    lengths  [5, 3, 4, 2, 2]   max_length 8
    5 → new row A (room 3); 4 → new row B (room 4); 3 → A (best fit, room 0);
    2 → B (room 2); 2 → B (room 0)                    rows: A = 5+3, B = 4+2+2

>>> pack_samples([5, 3, 4, 2, 2], 8)
[[0, 1], [2, 3, 4]]
"""

from __future__ import annotations

import bisect

from sftlab.errors import SftlabError


def pack_samples(lengths: list[int], max_length: int) -> list[list[int]]:
    """Bins of sample indices whose lengths sum to at most ``max_length`` each."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    # (room left, bin index), sorted by room, so the best fit is one bisect away
    rooms: list[tuple[int, int]] = []
    for i in order:
        n = lengths[i]
        if n > max_length:
            raise SftlabError(
                f"sample {i} has {n} tokens > max_length={max_length}; truncate before packing "
                "(render.truncation) or raise render.max_length"
            )
        at = bisect.bisect_left(rooms, (n, -1))
        if at < len(rooms):
            room, b = rooms.pop(at)
            bins[b].append(i)
            bisect.insort(rooms, (room - n, b))
        else:
            bins.append([i])
            bisect.insort(rooms, (max_length - n, len(bins) - 1))
    return bins


def padding_share(lengths: list[int], bins: list[list[int]], max_length: int) -> float:
    """Share of padding tokens when every bin is padded to ``max_length``.

    >>> padding_share([5, 3, 4, 2], [[0, 1], [2, 3]], 8)
    0.125
    """
    total = len(bins) * max_length
    return 1.0 - sum(lengths) / total if total else 0.0
