"""Restoring a checkpoint's random state when a run resumes, and refusing what cannot continue.

A checkpoint's meta["rng"] is `rng.get_state()` at the save: the NumPy generator, the GPU's, and
(since dropout masks were keyed by each sample's place in the batch, engine/rng.py) the keyed
masks' seed and next site under "dropout". A checkpoint written before that has no "dropout"
entry: its masks came from per-slice generators, a stream the keyed masks cannot continue. It
still loads for sampling and fine-tuning (they read its weights only); resuming it continues
exactly when its model has no dropout (no mask is drawn) and is refused, with the reason and
what to do instead, when it has.
Leaves out: converting an old stream into the keyed one (there is no exact conversion).
"""
from ..engine import rng
from ..nn import Dropout


def restore_random_state(meta, model, path, instead):
    """Set the package's random state to a checkpoint's (meta["rng"]) to resume `model`'s run.

    Args:
        meta: the checkpoint's metadata; model: the resumed model (its Dropout modules decide);
        path: the checkpoint, named in the refusal; instead: what the user can do, for the refusal.
    Raises:
        ValueError when the state predates the keyed masks and `model` has a Dropout of p > 0.
    """
    state = meta["rng"]
    dropouts = sorted({m.p for m in model.modules() if isinstance(m, Dropout) and m.p > 0})
    if not rng.has_keyed_state(state) and dropouts:
        raise ValueError(f"{path} was written before dropout masks were keyed by each sample's place in the batch "
                         f"(its random state has no 'dropout' entry): its masks were drawn per thread slice, the old "
                         f"way, and cannot be continued exactly, and this run has dropout {dropouts[-1]}. Its weights "
                         f"still load: {instead}")
    rng.set_state(state)
