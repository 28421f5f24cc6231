"""Forward hooks (`Module.register_forward_hook`, nn/module.py and nn/hooks.py), PyTorch's contract:
fn(module, inputs, output) once per forward with the positional inputs; a returned value
replaces the output, None keeps it; several hooks chain in registration order; the handle's
`remove()` (twice harmless, also from inside the hook, also as a `with` block) detaches it; a
non-callable is refused. Hooks stay on a module through `fuse`/`unfuse` (the class swap) and
`.to()`, fire once per forward under DataParallel (from the calling thread, with the whole
batch joined from the slices; a replacing hook is refused there), and on the fused attention the kernel shows the
attention dropout's hooks the same weights the reference passes through that module (and
refuses a replacement with a clear error).
"""
import threading

import numpy as np
import pytest

from tinygrad_lm import Tensor, fast, manual_seed, nn
from tinygrad_lm.fast import split_hooks
from tinygrad_lm.fast.data_parallel import DataParallel
from tinygrad_lm.models.gpt import GPT, GPTConfig


def tiny_gpt(**kw):
    cfg = dict(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=8)
    return GPT(GPTConfig(**{**cfg, **kw})).to(dtype=np.float64)


def ids(B=2, T=5, V=13, seed=0):
    return np.random.default_rng(seed).integers(0, V, (B, T))


def recorder(calls):
    """A hook that notes each call's (module, inputs, output) and keeps the output."""
    return lambda module, inputs, output: calls.append((module, inputs, output))


# ------------------------------------------------------------------ the contract
def test_a_hook_gets_the_module_its_positional_inputs_and_its_output_once_per_forward(rng):
    attn = nn.CausalSelfAttention(4, 2).to(dtype=np.float64)
    calls = []
    attn.register_forward_hook(recorder(calls))
    x = Tensor(rng.standard_normal((2, 3, 4)))
    mask = np.array([[1, 1, 0], [1, 1, 1]])
    y1 = attn(x, attention_mask=mask)  # a keyword argument is not among the inputs (PyTorch's default)
    y2 = attn(x, mask)
    assert len(calls) == 2
    (m1, in1, out1), (m2, in2, out2) = calls
    assert m1 is attn and m2 is attn
    assert isinstance(in1, tuple) and len(in1) == 1 and in1[0] is x
    assert len(in2) == 2 and in2[0] is x and in2[1] is mask
    assert out1 is y1 and out2 is y2


def test_a_returned_value_replaces_the_output_and_none_keeps_it(rng):
    lin = nn.Linear(3, 2).to(dtype=np.float64)
    x = Tensor(rng.standard_normal((4, 3)))
    plain = lin(x).data.copy()
    with lin.register_forward_hook(lambda m, i, o: None):
        np.testing.assert_array_equal(lin(x).data, plain)
    with lin.register_forward_hook(lambda m, i, o: o * 3.0):
        np.testing.assert_allclose(lin(x).data, 3.0 * plain, rtol=1e-15)
    np.testing.assert_array_equal(lin(x).data, plain)  # gone with the block


def test_hooks_run_in_registration_order_each_seeing_what_the_previous_left(rng):
    lin = nn.Linear(3, 2).to(dtype=np.float64)
    x = Tensor(rng.standard_normal((4, 3)))
    plain = lin(x).data.copy()
    seen = []
    lin.register_forward_hook(lambda m, i, o: seen.append(("double", o.data.copy())) or o * 2.0)
    lin.register_forward_hook(lambda m, i, o: seen.append(("look", o.data.copy())))  # None: keeps the double
    lin.register_forward_hook(lambda m, i, o: seen.append(("plus", o.data.copy())) or o + 1.0)
    out = lin(x)
    assert [name for name, _ in seen] == ["double", "look", "plus"]
    np.testing.assert_array_equal(seen[0][1], plain)
    np.testing.assert_allclose(seen[1][1], 2.0 * plain, rtol=1e-15)
    np.testing.assert_allclose(seen[2][1], 2.0 * plain, rtol=1e-15)
    np.testing.assert_allclose(out.data, 2.0 * plain + 1.0, rtol=1e-15)


def test_a_replacing_hook_keeps_the_graph_gradients_flow_through_the_replacement(rng):
    lin = nn.Linear(3, 2).to(dtype=np.float64)
    x = Tensor(rng.standard_normal((4, 3)))
    lin(x).sum().backward()
    plain = lin.weight.grad.copy()
    lin.zero_grad()
    with lin.register_forward_hook(lambda m, i, o: o * 3.0):
        lin(x).sum().backward()
    np.testing.assert_allclose(lin.weight.grad, 3.0 * plain, rtol=1e-14)


def test_remove_detaches_only_its_hook_and_twice_is_harmless(rng):
    lin = nn.Linear(3, 2)
    x = Tensor(rng.standard_normal((1, 3)))
    a, b = [], []
    ha = lin.register_forward_hook(recorder(a))
    lin.register_forward_hook(recorder(b))
    lin(x)
    ha.remove()
    ha.remove()
    lin(x)
    assert (len(a), len(b)) == (1, 2)
    assert len(lin._forward_hooks) == 1


def test_with_block_removes_the_hook_also_when_the_block_raises(rng):
    lin = nn.Linear(3, 2)
    x = Tensor(rng.standard_normal((1, 3)))
    calls = []
    with pytest.raises(KeyError):
        with lin.register_forward_hook(recorder(calls)) as handle:
            assert handle is not None
            lin(x)
            raise KeyError("boom")
    lin(x)
    assert len(calls) == 1 and not lin._forward_hooks


def test_a_hook_that_removes_itself_fires_once_and_the_others_still_run(rng):
    lin = nn.Linear(3, 2)
    x = Tensor(rng.standard_normal((1, 3)))
    once, always = [], []
    handle = lin.register_forward_hook(lambda m, i, o: (once.append(1), handle.remove()) and None)
    lin.register_forward_hook(recorder(always))
    for _ in range(3):
        lin(x)
    assert len(once) == 1 and len(always) == 3


def test_a_hook_registered_during_a_forward_fires_from_the_next_one(rng):
    lin = nn.Linear(3, 2)
    x = Tensor(rng.standard_normal((1, 3)))
    late, handles = [], []

    def register_once(module, inputs, output):
        if not handles:
            handles.append(module.register_forward_hook(recorder(late)))

    lin.register_forward_hook(register_once)
    lin(x)
    assert late == [] and len(lin._forward_hooks) == 2  # a call runs the hooks there were when it began
    lin(x)
    assert len(late) == 1


def test_a_hook_that_raises_propagates_and_the_module_still_works(rng):
    lin = nn.Linear(3, 2)
    x = Tensor(rng.standard_normal((1, 3)))

    def broken(module, inputs, output):
        raise ArithmeticError("inside the hook")

    handle = lin.register_forward_hook(broken)
    with pytest.raises(ArithmeticError, match="inside the hook"):
        lin(x)
    handle.remove()
    assert lin(x).shape == (1, 2)


@pytest.mark.parametrize("bad", [None, 3, "print", [len]])
def test_a_non_callable_hook_is_refused_with_a_clear_type_error(bad):
    lin = nn.Linear(3, 2)
    with pytest.raises(TypeError, match=r"hook must be callable as hook\(module, inputs, output\), got "
                       + type(bad).__name__):
        lin.register_forward_hook(bad)
    assert not lin._forward_hooks


def test_every_module_has_its_own_hooks():
    model = tiny_gpt()
    model.transformer.h[0].ln_1.register_forward_hook(lambda m, i, o: None)
    with_hooks = [name for name, m in model.named_modules() if m._forward_hooks]
    assert with_hooks == ["transformer.h.0.ln_1"]


# ------------------------------------------------------------------ through fuse, unfuse, .to() and threads
def test_hooks_stay_through_fuse_unfuse_and_to():
    model = tiny_gpt()
    x = ids()
    seen = []
    model.transformer.h[0].ln_1.register_forward_hook(lambda m, i, o: seen.append((type(m).__name__, o.dtype)))
    model.lm_head.register_forward_hook(lambda m, i, o: o * 0.0)  # replacing: logits all zero
    model(x, x)
    fast.fuse(model)
    logits, _ = model(x, x)
    assert not logits.data.any()
    fast.unfuse(model)
    model.to(dtype=np.float32)
    logits, _ = model(x, x)
    assert not logits.data.any()
    assert seen == [("LayerNorm", np.float64), ("FusedLayerNorm", np.float64), ("LayerNorm", np.float32)]


@pytest.mark.parametrize("fused", [False, True], ids=["reference-layers", "fused"])
def test_under_data_parallel_each_hook_fires_once_per_forward_and_sees_the_whole_batch(fused):
    model = tiny_gpt(dropout=0.0)
    if fused:
        fast.fuse(model)
    x = ids(B=5)
    seen = {}
    watched = {"lm_head": model.lm_head, "block": model.transformer.h[1], "ln_1": model.transformer.h[0].ln_1,
               "weights": model.transformer.h[0].attn.attn_dropout, "model": model}
    for name, module in watched.items():
        module.register_forward_hook(lambda m, i, o, name=name: seen.setdefault(name, []).append((m, i, o)))
    want, want_loss = model(x, x)
    alone = {name: calls[0] for name, calls in seen.items()}
    assert all(len(calls) == 1 for calls in seen.values()) and seen.keys() == watched.keys()
    seen.clear()
    threads = []
    model.lm_head.register_forward_hook(lambda m, i, o: threads.append(threading.get_ident()))
    got, loss = DataParallel(model, threads=2)(x, x)  # slices of 3 and 2 rows, in 2 threads
    assert {name: len(calls) for name, calls in seen.items()} == {name: 1 for name in watched}
    assert threads == [threading.get_ident()]  # from the calling thread, after the slices' threads
    for name, [(module, inputs, output)] in seen.items():
        assert module is watched[name]  # the model's own module, not a replica
        ref_module, ref_inputs, ref_output = alone[name]
        outs, ref_outs = (output, ref_output) if name == "model" else ((output,), (ref_output,))
        for o, r in zip(outs, ref_outs):
            assert o.shape == r.shape  # B rows (the mean loss: 0-d)
            np.testing.assert_allclose(o.data, r.data, rtol=1e-10, atol=1e-13)
        first = inputs[0].data if isinstance(inputs[0], Tensor) else inputs[0]
        ref_first = ref_inputs[0].data if isinstance(ref_inputs[0], Tensor) else ref_inputs[0]
        assert first.shape[0] == 5
        np.testing.assert_allclose(first, ref_first, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(got.data, want.data, rtol=1e-12)
    np.testing.assert_allclose(loss.data, want_loss.data, rtol=1e-12)


def test_under_data_parallel_a_replacing_hook_is_refused_with_the_fix():
    model = tiny_gpt()
    x = ids(B=4)
    with model.lm_head.register_forward_hook(lambda m, i, o: o * 0.0):
        assert not model(x, x)[0].data.any()  # one thread: the replacement is honoured
        with pytest.raises(RuntimeError, match=r"returned a replacement.*--threads 1"):
            DataParallel(model, threads=2)(x, x)
    got, _ = DataParallel(model, threads=2)(x, x)  # without the hook the split runs as before
    assert got.data.any()


def test_run_with_cache_under_data_parallel_keeps_the_whole_batch():
    from tinygrad_lm.nn.hooks import run_with_cache

    model = fast.fuse(tiny_gpt(dropout=0.0))
    x = ids(B=3)
    _, alone = run_with_cache(model, lambda: model(x, x))
    _, split = run_with_cache(model, lambda: DataParallel(model, threads=2)(x, x))
    assert split.keys() == alone.keys() and "transformer.h.1.attn.weights" in split
    for name, value in alone.items():
        got = split[name]
        assert got.shape == value.shape, name  # B = 3 rows, or none (wpe's (T, C), the slices' own)
        np.testing.assert_allclose(got.data, value.data, rtol=1e-10, atol=1e-13, err_msg=name)
    assert split["transformer.h.1"].shape[0] == split["transformer.h.1.attn.weights"].shape[0] == 3
    assert not split_hooks.hooked(model)  # run_with_cache removed its hooks


def test_without_hooks_the_replicas_record_nothing():
    model = tiny_gpt()
    assert not split_hooks.hooked(model)
    model.transformer.h[0].ln_1.register_forward_hook(lambda m, i, o: None)
    assert split_hooks.hooked(model)


# ------------------------------------------------------------------ the attention weights on both paths
def weights_seen(module, x, mask=None, seed=None):
    """(input, output) the attention dropout module's hooks see on one forward of `module`."""
    seen = []
    with module.attn_dropout.register_forward_hook(lambda m, i, o: seen.append((i[0].data.copy(), o.data.copy()))):
        if seed is not None:  # the same dropout streams on both paths
            module.attn_dropout.generator = np.random.default_rng(seed)
            module.resid_dropout.generator = np.random.default_rng(seed + 1)
        y = module(x, mask)
    assert len(seen) == 1
    return seen[0] + (y.data,)


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_hooks_on_the_fused_attention_dropout_see_the_weights_the_reference_passes_through_it(rng, train):
    manual_seed(1)
    ref = nn.CausalSelfAttention(8, 2, dropout=0.3).to(dtype=np.float64)
    fused = fast.fuse(nn.CausalSelfAttention(8, 2, dropout=0.3).to(dtype=np.float64))
    fused.load_state_dict(ref.state_dict())
    ref.train(train), fused.train(train)
    x = Tensor(rng.standard_normal((2, 5, 8)))
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])  # padded keys too
    p_ref, used_ref, y_ref = weights_seen(ref, x, mask, seed=5)
    p_fused, used_fused, y_fused = weights_seen(fused, x, mask, seed=5)
    assert p_fused.shape == (2, 2, 5, 5)
    np.testing.assert_allclose(p_fused, p_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(used_fused, used_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(y_fused, y_ref, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(p_fused.sum(-1), 1.0, rtol=1e-12)  # before dropout: each row sums to 1
    assert not p_fused[0, :, :, 3:].any()  # padded keys get no weight
    assert np.triu(p_fused[1, 0], 1).sum() == 0  # nor future ones
    if train:
        assert not np.allclose(used_fused, p_fused)  # the output is the dropped weights
        dropped = used_fused == 0
        assert dropped.any()
        np.testing.assert_allclose(used_fused[~dropped], p_fused[~dropped] / 0.7, rtol=1e-12)
    else:
        np.testing.assert_array_equal(used_fused, p_fused)


def test_hooks_on_the_attention_dropout_see_the_weights_during_cached_generation_on_both_paths():
    shapes = {}
    for fused in (False, True):
        manual_seed(2)  # the same weights on both paths
        model = tiny_gpt(n_layer=1)
        model = fast.fuse(model) if fused else model
        model.eval()
        seen = []
        model.transformer.h[0].attn.attn_dropout.register_forward_hook(lambda m, i, o: seen.append(i[0].data.copy()))
        model.generate(ids(B=1, T=3), 2, seed=0)
        shapes[fused] = seen
    assert [w.shape for w in shapes[True]] == [(1, 2, 3, 3), (1, 2, 1, 4)]  # the prompt, then one new query
    for ref, fus in zip(shapes[False], shapes[True]):
        np.testing.assert_allclose(fus, ref, rtol=1e-12, atol=1e-15)


def test_a_hook_on_the_reference_attention_dropout_can_replace_the_weights(rng):
    attn = nn.CausalSelfAttention(4, 2).to(dtype=np.float64)
    attn.c_proj.bias.data[:] = rng.standard_normal(4)
    x = Tensor(rng.standard_normal((2, 3, 4)))
    with attn.attn_dropout.register_forward_hook(lambda m, i, o: o * 0.0):
        y = attn(x)  # no weight on any value: c_proj sees zeros and gives its bias
    np.testing.assert_allclose(y.data, np.broadcast_to(attn.c_proj.bias.data, (2, 3, 4)), rtol=1e-15)


def test_a_replacing_hook_on_the_fused_attention_dropout_is_refused_with_a_clear_error(rng):
    attn = fast.fuse(nn.CausalSelfAttention(4, 2))
    x = Tensor(rng.standard_normal((2, 3, 4)).astype(np.float32))
    with attn.attn_dropout.register_forward_hook(lambda m, i, o: o * 0.0):
        with pytest.raises(RuntimeError, match=r"cannot take one.*unfuse\(model\), or --reference"):
            attn(x)
    assert attn(x).shape == (2, 3, 4)  # and once the hook is gone the layer works
