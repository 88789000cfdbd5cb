"""MinHash signatures and LSH banding in numpy, vectorised over a whole batch of records.

Per batch: every record's shingles are hashed (CRC32 of each word, combined
into n-gram hashes over the concatenated token stream of the batch), then all
shingles × all permutations are computed in one array operation and reduced
per record with ``np.minimum.reduceat``. Permutations are multiply-shift hashes
in uint64 (wrap-around arithmetic), keeping the high 32 bits.

LSH: ``bands × rows = num_perm`` are chosen to minimise false positives plus
false negatives around the threshold; records sharing a band key are candidate
pairs, confirmed by their estimated Jaccard before being joined into a cluster.

>>> mh = MinHasher(num_perm=64, ngram=2)
>>> sig = mh.signatures(["the cat sat on the mat", "the cat sat on the mat!", "stock prices fell"])
>>> float(jaccard(sig[0], sig[1])), float(jaccard(sig[0], sig[2])) < 0.2
(1.0, True)
>>> near_duplicate_clusters(sig, threshold=0.8)
[[0, 1]]
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from sftlab.data.steps.text import words

_SHIFT = np.uint64(32)


class MinHasher:
    """Signatures of texts: word n-grams (CJK characters are words, so CJK runs give character n-grams) or char n-grams."""

    def __init__(self, num_perm: int = 128, ngram: int = 3, shingle: str = "word", seed: int = 1):
        self.num_perm = num_perm
        self.ngram = ngram
        self.shingle = shingle
        rng = np.random.default_rng(seed)
        # Odd multipliers make each permutation a bijection on 64-bit words.
        self.a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self.b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
        self.mix = rng.integers(1, 2**63, size=max(ngram, 1), dtype=np.uint64) * np.uint64(2) + np.uint64(1)

    def _units(self, text: str) -> list[str]:
        return words(text) if self.shingle == "word" else list(text.lower())

    def shingle_hashes(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """All shingle hashes of a batch (uint64) and each record's start offset into them."""
        crc = zlib.crc32
        unit_hashes: list[int] = []
        unit_starts = np.zeros(len(texts) + 1, dtype=np.int64)
        for i, text in enumerate(texts):
            units = self._units(text)
            # A record shorter than one shingle is one shingle of everything it has.
            unit_hashes.extend(crc(u.encode("utf-8")) for u in units)
            unit_starts[i + 1] = len(unit_hashes)
        toks = np.asarray(unit_hashes, dtype=np.uint64)
        lengths = np.diff(unit_starts)
        n = self.ngram
        total = len(toks)
        pos = np.arange(total, dtype=np.int64)
        rec_of = np.repeat(np.arange(len(texts)), lengths)
        end_of = unit_starts[1:][rec_of]
        # Combined n-gram hash at every position; units past the record's end contribute nothing.
        combined = np.zeros(total, dtype=np.uint64)
        for k in range(n):
            idx = pos + k
            inside = idx < end_of
            combined += (
                np.where(inside, toks[np.minimum(idx, max(total - 1, 0))], 0).astype(np.uint64) * self.mix[k]
            )
        # Shingles: n-grams inside the record; a record shorter than n is one shingle of all it has.
        valid = (pos + n <= end_of) | ((pos == unit_starts[:-1][rec_of]) & (lengths[rec_of] < n))
        shingles = combined[valid]
        counts = np.bincount(rec_of[valid], minlength=len(texts)) if total else np.zeros(len(texts), int)
        starts = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        return shingles, starts

    def signatures(self, texts: Sequence[str], batch: int = 256) -> np.ndarray:
        """``(len(texts), num_perm)`` uint32 MinHash signatures; empty texts get all-max signatures.

        Small batches keep the (shingles × perms) work array in cache; ops are in place.
        """
        out = np.full((len(texts), self.num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
        buf = np.empty(0, dtype=np.uint64)
        for lo in range(0, len(texts), batch):
            chunk = texts[lo : lo + batch]
            shingles, starts = self.shingle_hashes(chunk)
            if not len(shingles):
                continue
            if buf.size < len(shingles) * self.num_perm:
                buf = np.empty(len(shingles) * self.num_perm * 2, dtype=np.uint64)
            work = buf[: len(shingles) * self.num_perm].reshape(len(shingles), self.num_perm)
            # Multiply-shift permutation, keeping the high 32 bits.
            np.multiply(shingles[:, None], self.a[None, :], out=work)
            work += self.b[None, :]
            work >>= _SHIFT
            nonempty = np.flatnonzero(np.diff(starts) > 0)
            out[lo + nonempty] = np.minimum.reduceat(work, starts[nonempty], axis=0)
        return out


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of two signatures."""
    return float(np.mean(a == b))


def lsh_params(threshold: float, num_perm: int, fp_weight: float = 0.1) -> tuple[int, int]:
    """``(bands, rows)`` minimising weighted false-positive + false-negative probability mass around ``threshold``.

    False positives are cheap here (every candidate pair is checked against its
    signatures before it counts), so missed duplicates weigh 9× more by default.
    """
    xs_lo = np.linspace(0, threshold, 200)
    xs_hi = np.linspace(threshold, 1, 200)
    best, best_err = (1, num_perm), float("inf")
    for bands in range(1, num_perm + 1):
        rows = num_perm // bands
        if rows < 1:
            continue
        fp = np.trapezoid(1 - (1 - xs_lo**rows) ** bands, xs_lo)
        fn = np.trapezoid((1 - xs_hi**rows) ** bands, xs_hi)
        err = fp_weight * fp + (1 - fp_weight) * fn
        if err < best_err:
            best, best_err = (bands, rows), err
    return best


def band_keys(sig: np.ndarray, bands: int, rows: int, seed: int = 7) -> np.ndarray:
    """``(n, bands)`` uint64 keys: each band's rows folded into one 64-bit hash."""
    rng = np.random.default_rng(seed)
    mult = rng.integers(1, 2**63, size=rows, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    keys = np.zeros((sig.shape[0], bands), dtype=np.uint64)
    for r in range(rows):
        cols = sig[:, r : bands * rows : rows].astype(np.uint64)
        keys = (keys ^ (cols * mult[r])) * np.uint64(0x9E3779B97F4A7C15)
    return keys


class _UnionFind:
    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return int(root)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # The smaller index becomes the root, so a cluster's root is its first record.
            lo, hi = (ra, rb) if ra < rb else (rb, ra)
            self.parent[hi] = lo


def near_duplicate_clusters(
    sig: np.ndarray, threshold: float, bands: int | None = None, rows: int | None = None
) -> list[list[int]]:
    """Clusters (sorted index lists, size ≥ 2) of records whose estimated Jaccard ≥ ``threshold``."""
    n, num_perm = sig.shape
    if bands is None or rows is None:
        bands, rows = lsh_params(threshold, num_perm)
    keys = band_keys(sig, bands, rows)
    uf = _UnionFind(n)
    empty = np.all(sig == np.iinfo(np.uint32).max, axis=1)
    for b in range(bands):
        col = keys[:, b]
        order = np.argsort(col, kind="stable")
        sorted_keys = col[order]
        same = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
        if not len(same):
            continue
        # Runs of equal keys: link each member to its run's first member after checking similarity.
        run_start = np.ones(n, dtype=bool)
        run_start[same + 1] = False
        head = order[np.maximum.accumulate(np.where(run_start, np.arange(n), 0))]
        members = order[same + 1]
        heads = head[same + 1]
        sims = np.mean(sig[members] == sig[heads], axis=1)
        for m, h, s in zip(members.tolist(), heads.tolist(), sims.tolist(), strict=True):
            if s >= threshold and not empty[m] and uf.find(m) != uf.find(h):
                uf.union(m, h)
    clusters: dict[int, list[int]] = {}
    for i in np.flatnonzero(uf.parent != np.arange(n)).tolist():
        root = uf.find(i)
        clusters.setdefault(root, [root]).append(i)
    return sorted((sorted(c) for c in clusters.values()), key=lambda c: c[0])
