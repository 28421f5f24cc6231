"""A key/value cache for generation: each layer's keys and values of the positions seen so far.

Sampling appends one token at a time. Without a cache, every new token runs the whole
context through the model again, although the keys and values of the earlier positions are
the same as last time (causal attention: position i never sees a later one). With a cache,
each attention layer appends the new position's k and v to the stored ones and attends from
the new query to all of them, so one step costs O(T) instead of O(T^2) attention and one
token's worth of matrix products instead of T tokens' worth.

    cache = KVCache(n_layer)
    model(prompt, kv_cache=cache)          # prefill: every layer stores k, v of the prompt
    model(next_token, kv_cache=cache)      # one step: position len(cache), k, v appended

What this file leaves out: preallocated buffers (each step concatenates, a copy of O(T) per
layer, small beside the step's matrix products), and a sliding window: GPT-2's positions are
absolute, so once the context is longer than block_size every cached key belongs to the
wrong position and `GPT.generate` starts the cache again from the cropped context.
It follows Hugging Face's `past_key_values` in what it stores, as a plain list of arrays.
"""
from ..engine.backend import get_array_module
from ..engine.tensor import Tensor


class LayerKV:
    """One attention layer's cached keys and values, (B, nh, S, hs) raw arrays, or None."""

    def __init__(self):
        self.k = self.v = None

    def append(self, k, v):
        """Add this step's keys and values (B, nh, T, hs); returns all of them (B, nh, S + T, hs).

        Args:
            k, v: Tensors of the new positions' keys and values.
        Returns:
            (k, v) Tensors over every cached position followed by the new ones (no graph kept).
        """
        if self.k is None:
            self.k, self.v = k.data, v.data
        else:
            xp = get_array_module(k.data)
            self.k = xp.concatenate([self.k, k.data], axis=2)  # (B, nh, S, hs) + (B, nh, T, hs) on positions
            self.v = xp.concatenate([self.v, v.data], axis=2)
        return Tensor(self.k), Tensor(self.v)


class KVCache:
    """The keys and values of every layer of a model, for `GPT.forward(..., kv_cache=cache)`.

    Args:
        n_layer: the number of attention layers (blocks) of the model.
    """

    def __init__(self, n_layer):
        self.layers = [LayerKV() for _ in range(n_layer)]

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        """The number of positions cached (0 before the first forward)."""
        k = self.layers[0].k
        return 0 if k is None else k.shape[2]

    def clear(self):
        """Forget every position (generation restarts from a cropped context)."""
        for layer in self.layers:
            layer.k = layer.v = None
