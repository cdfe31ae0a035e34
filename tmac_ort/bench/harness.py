"""Timing: read bandwidth, a cache evictor for cold runs, interleaved medians."""

from __future__ import annotations

import time

import numpy as np


def read_bandwidth_gbs(threads: int = 1, megabytes: int = 512) -> float:
    """DRAM read bandwidth of `threads` threads, each summing its share of a 512 MB array
    with numpy (which releases the GIL while it reduces); best of 5."""
    from concurrent.futures import ThreadPoolExecutor

    a = np.ones(megabytes * (1 << 20) // 8, dtype=np.float64)
    parts = np.array_split(a, threads)
    best = 0.0
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(5):
            t0 = time.perf_counter()
            list(pool.map(np.sum, parts))
            best = max(best, a.nbytes / (time.perf_counter() - t0) / 1e9)
    return best


class CacheEvictor:
    """Reads a buffer four times the size of the last-level cache, so the next call finds its
    weights in DRAM, as in decoding a model many times larger than the cache."""

    def __init__(self, megabytes: int | None = None):
        megabytes = megabytes or 4 * max(32, _last_level_cache_mb())
        self.buffer = np.ones(megabytes * (1 << 20) // 8, dtype=np.float64)

    def __call__(self) -> None:
        self.buffer.sum()


def _last_level_cache_mb() -> int:
    import os

    try:
        return max(int(os.sysconf("SC_LEVEL3_CACHE_SIZE")), int(os.sysconf("SC_LEVEL2_CACHE_SIZE"))) >> 20
    except (ValueError, OSError):
        return 32


def time_interleaved(cs: list, a: np.ndarray, rounds: int, iters: int, evict=None) -> list[float]:
    """Median seconds per run of each contender; each sample repeats a contender up to `iters`
    times, fewer for slow ones (about 5 ms a sample), so one pathological path cannot stall a run.
    With `evict` (a CacheEvictor) every sample is one run after the caches were emptied."""
    feed = {"A": a}
    reps = []
    for c in cs:
        t0 = time.perf_counter()
        c.session.run(None, feed)
        reps.append(1 if evict else max(1, min(iters, int(5e-3 / max(time.perf_counter() - t0, 1e-6)))))
    samples = [[] for _ in cs]
    for _ in range(rounds):
        for i, c in enumerate(cs):
            if evict:
                evict()
            else:
                c.session.run(None, feed)  # untimed: weights back in cache after the other contenders
            t0 = time.perf_counter()
            for _ in range(reps[i]):
                c.session.run(None, feed)
            samples[i].append((time.perf_counter() - t0) / reps[i])
    return [float(np.median(s)) for s in samples]
