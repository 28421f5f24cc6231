"""A small per-device cache of constant arrays (the causal mask, vectors of ones), bounded.

Keyed by what the array is, the array module and the device it lives on, so that each GPU
keeps its own copy and a NumPy array is never handed to CuPy; the least recently used entry
goes once `size` are held, so generation (a new mask size every token) or many batch sizes do
not grow it without end. functools.lru_cache does the same for functions, but cannot key on
the current CUDA device, which no argument names.
Leaves out: eviction by memory size (the entries are small next to activations).
"""
import threading

import numpy as np


class DeviceCache:
    """`get(key, xp, make)`: the cached `make()` for (key, xp, current device). Thread-safe (the
    fast path's DataParallel workers share it)."""

    def __init__(self, size):
        self.size, self.entries, self.lock = size, {}, threading.Lock()

    def get(self, key, xp, make):
        device = xp.cuda.get_device_id() if xp is not np else -1
        full = (key, xp.__name__, device)
        with self.lock:
            value = self.entries.pop(full, None)
            if value is None:
                value = make()
                if len(self.entries) >= self.size:
                    del self.entries[next(iter(self.entries))]  # least recently used (dicts keep order)
            self.entries[full] = value  # (re)inserted last: most recently used
        return value

    def __len__(self):
        return len(self.entries)

    def clear(self):
        self.entries.clear()
