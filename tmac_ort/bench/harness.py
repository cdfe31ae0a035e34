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


def beyond_cache_bytes() -> int:
    """Four times the last-level cache (at least 32 MB): data this large is not kept cached."""
    return 4 * max(32, _last_level_cache_mb()) << 20


class CacheEvictor:
    """Reads a buffer four times the size of the last-level cache, so the next call finds its
    weights (and everything else) in DRAM."""

    def __init__(self, nbytes: int | None = None):
        self.buffer = np.ones((nbytes or beyond_cache_bytes()) // 8, dtype=np.float64)

    def __call__(self) -> None:
        self.buffer.sum()


def _last_level_cache_mb() -> int:
    import os

    try:
        return max(int(os.sysconf("SC_LEVEL3_CACHE_SIZE")), int(os.sysconf("SC_LEVEL2_CACHE_SIZE"))) >> 20
    except (ValueError, OSError):
        return 32


def time_interleaved(cs: list, a: np.ndarray, rounds: int, iters: int, evict=None, stream: bool = False) -> list[float]:
    """Median seconds per run of each contender; each sample repeats a contender up to `iters`
    times, fewer for slow ones (about 5 ms a sample), so one pathological path cannot stall a run.
    With `evict` (a CacheEvictor) every sample is one run after the caches were emptied.
    With `stream` every sample is one run of each of a contender's sessions in turn, each over
    its own copy of the weights (contenders(stream_bytes=...)): together more than the caches
    hold, so every run finds its weights in DRAM while code and activations stay cached, as
    when decoding reads one layer after another."""
    feed = {"A": a}
    calls = []  # the sessions one sample runs, in order
    for c in cs:
        t0 = time.perf_counter()
        for session in c.sessions:  # (first runs: allocations, page faults)
            session.run(None, feed)
        once = (time.perf_counter() - t0) / len(c.sessions)
        reps = 1 if evict else max(1, min(iters, int(5e-3 / max(once, 1e-6))))
        calls.append(c.sessions if stream else [c.session] * reps)
    samples = [[] for _ in cs]
    for _ in range(rounds):
        for i, c in enumerate(cs):
            if evict:
                evict()
            elif not stream:
                c.session.run(None, feed)  # untimed: weights back in cache after the other contenders
            t0 = time.perf_counter()
            for session in calls[i]:
                session.run(None, feed)
            samples[i].append((time.perf_counter() - t0) / len(calls[i]))
    return [float(np.median(s)) for s in samples]
