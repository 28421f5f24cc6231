"""`run_with_cache` (nn/hooks.py) on GPT, Bert, BertForMaskedLM and both sequence classifiers:
every submodule that runs, by its dotted name, and each layer's attention weights under
`<attention layer>.weights`, (B, nh, T, T), before attention dropout.

Checked here: the exact key set and the shapes; the logits are the plain forward's; the cached
attention weights and block outputs equal a float64 hand computation from the cached layer
inputs and the parameters (GPT: causal, with and without padding; BERT: padded keys at weight 0,
rows summing to 1); the fused layers cache the same keys and values (eval, padding, and train
mode with dropout from the same seeded stream, where the weights are pre-dropout and the
dropout module's entry is the dropped ones); the cache is cut from the graph (no creator, no
grad, gradients of the logits unchanged, mutating it changes nothing); no hook is left behind,
also when the forward raises, and a user's own hook stays and fires; the CuPy path (real GPU or
the stand-in) caches what NumPy caches.
"""
import numpy as np
import pytest

from tinygrad_lm import Tensor, fast, manual_seed
from tinygrad_lm.engine import backend
from tinygrad_lm.models.bert import Bert, BertConfig, BertForMaskedLM
from tinygrad_lm.models.bert_classifier import BertForSequenceClassification
from tinygrad_lm.models.gpt import GPT, GPTConfig
from tinygrad_lm.models.gpt_classifier import GPTForSequenceClassification
from tinygrad_lm.testing.backends import cuda_devices

B, T, NH, C, V, LAYERS = 2, 5, 2, 8, 13, 2
RIGHT_PADDED = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])


def gpt_config(**kw):
    return GPTConfig(**{**dict(vocab_size=V, block_size=8, n_layer=LAYERS, n_head=NH, n_embd=C), **kw})


def bert_config(**kw):
    cfg = dict(vocab_size=V, hidden_size=C, num_hidden_layers=LAYERS, num_attention_heads=NH, intermediate_size=16,
               max_position_embeddings=8, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertConfig(**{**cfg, **kw})


def ids(seed=0):
    return np.random.default_rng(seed).integers(0, V, (B, T))


def host(t):
    return backend.to_device(t.data, "cpu")


# ------------------------------------------------------------------ the models, and what each leaves out
# Modules the forward never calls have no output, so no entry: a ModuleList is only iterated,
# the loss runs only with targets, and BertForMaskedLM calls `bert.encode` (not `bert` itself,
# whose forward adds the pooler): its sequence output is `bert.encoder`'s entry.
def gpt(**kw):
    return GPT(gpt_config(**kw)).to(dtype=np.float64), {"transformer.h", "loss_fn"}, "transformer.h.{}.attn"


def gpt_classifier(**kw):
    model = GPTForSequenceClassification(gpt_config(**kw), 3).to(dtype=np.float64)
    return model, {"transformer.h", "loss_fn"}, "transformer.h.{}.attn"


def bert(**kw):
    return Bert(bert_config(**kw)).to(dtype=np.float64), {"encoder.layer"}, "encoder.layer.{}.attention.self"


def bert_mlm(**kw):
    model = BertForMaskedLM(bert_config(**kw)).to(dtype=np.float64)
    return model, {"bert", "bert.pooler", "bert.pooler.dense", "bert.encoder.layer", "loss_fn"}, \
        "bert.encoder.layer.{}.attention.self"


def bert_classifier(**kw):
    model = BertForSequenceClassification(bert_config(**kw), 3).to(dtype=np.float64)
    return model, {"bert.encoder.layer", "loss_fn"}, "bert.encoder.layer.{}.attention.self"


def plain_output(model, idx, mask=None):
    """What the model's own forward gives for what run_with_cache returns."""
    if isinstance(model, GPT):
        return model(idx, idx, attention_mask=mask)[0].data  # with targets: every position's logits
    if isinstance(model, Bert):
        seq, pooled = model(idx, mask)
        return seq.data, pooled.data
    return model(idx, attention_mask=mask)[0].data


def cached_run(model, idx, mask=None):
    return model.run_with_cache(idx, attention_mask=mask)  # every run_with_cache takes the mask by name


MODELS = {"gpt": gpt, "gpt-sinusoidal": lambda: gpt(pos_encoding="sinusoidal"), "gpt-classifier": gpt_classifier,
          "bert": bert, "bert-mlm": bert_mlm, "bert-classifier": bert_classifier}
EACH_MODEL = pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())


@EACH_MODEL
@pytest.mark.parametrize("masked", [False, True], ids=["full", "padded"])
def test_the_cache_holds_every_module_that_ran_and_each_layers_weights_and_the_output_is_the_forwards(make, masked):
    model, never_called, attention = make()
    mask = RIGHT_PADDED if masked else None
    out, cache = cached_run(model, ids(), mask)
    weights = {attention.format(i) + ".weights" for i in range(LAYERS)}
    names = {name for name, _ in model.named_modules() if name}
    assert never_called <= names  # the exclusions name real modules
    assert set(cache) == (names - never_called) | weights
    for key in weights:
        w = cache[key].data
        assert w.shape == (B, NH, T, T)
        np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-12)  # pre-dropout: each query's weights sum to 1
        if masked:
            assert not w[0, :, :, 3:].any()  # padded keys get none
    want = plain_output(model, ids(), mask)
    if isinstance(model, Bert):
        np.testing.assert_array_equal(out[0].data, want[0])
        np.testing.assert_array_equal(out[1].data, want[1])
    else:
        np.testing.assert_array_equal(out.data, want)


def test_gpt_cache_shapes_and_entries_are_the_modules_outputs():
    model, _, _ = gpt()
    logits, cache = model.run_with_cache(ids())
    shapes = {"transformer.wte": (B, T, C), "transformer.wpe": (T, C), "transformer.h.0.ln_1": (B, T, C),
              "transformer.h.0.attn.c_attn": (B, T, 3 * C), "transformer.h.1.attn": (B, T, C),
              "transformer.h.1.mlp.c_fc": (B, T, 4 * C), "transformer.h.1.attn.attn_dropout": (B, NH, T, T),
              "transformer.ln_f": (B, T, C), "transformer": (B, T, C), "lm_head": (B, T, V)}
    assert {k: cache[k].shape for k in shapes} == shapes
    np.testing.assert_array_equal(cache["lm_head"].data, logits.data)
    np.testing.assert_array_equal(cache["transformer.wte"].data, model.transformer.wte.weight.data[ids()])


def test_bert_passes_token_type_ids_and_the_mask_through():
    model, _, _ = bert_mlm()
    tt = np.array([[0, 0, 1, 1, 1], [0, 1, 1, 1, 1]])
    logits, cache = model.run_with_cache(ids(), RIGHT_PADDED, tt)
    np.testing.assert_array_equal(logits.data, model(ids(), RIGHT_PADDED, tt)[0].data)
    np.testing.assert_array_equal(cache["bert.embeddings.token_type_embeddings"].data,
                                  model.bert.embeddings.token_type_embeddings.weight.data[tt])
    assert not np.array_equal(logits.data, model.run_with_cache(ids(), RIGHT_PADDED)[0].data)
    pooled, cache = bert()[0].run_with_cache(ids())
    assert pooled[1].shape == (B, C) and cache["pooler"].shape == (B, C)


# ------------------------------------------------------------------ the weights by hand, float64
def softmax(scores, blocked):
    s = np.where(blocked, -np.inf, scores)
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def heads(a):
    return a.reshape(a.shape[0], a.shape[1], NH, -1).transpose(0, 2, 1, 3)  # (B, T, C) -> (B, nh, T, hs)


def merged(y):
    return y.transpose(0, 2, 1, 3).reshape(y.shape[0], y.shape[2], -1)  # (B, nh, T, hs) -> (B, T, C)


def linear(x, layer):
    return x @ layer.weight.data.T + layer.bias.data


def layer_norm(x, ln):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + ln.eps) * ln.weight.data + ln.bias.data


@pytest.mark.parametrize("masked", [False, True], ids=["full", "padded"])
@pytest.mark.parametrize("pos", ["learned", "sinusoidal"])
def test_gpt_cached_weights_and_blocks_equal_a_hand_computation(pos, masked):
    model, _, _ = gpt(pos_encoding=pos)
    for p in model.parameters():  # nonzero biases, so a forgotten bias shows
        p.data += 0.05 * np.random.default_rng(1).standard_normal(p.shape)
    mask = RIGHT_PADDED if masked else None
    _, cache = model.run_with_cache(ids(), mask)
    blocked = np.triu(np.ones((T, T), dtype=bool), k=1)  # (T, T): key after query
    if masked:
        blocked = blocked | ~RIGHT_PADDED.astype(bool)[:, None, None, :]  # (B, 1, T, T)
    x = cache["transformer.wte"].data + cache["transformer.wpe"].data
    np.testing.assert_allclose(cache["transformer.drop"].data, x, rtol=1e-13)
    for i, block in enumerate(model.transformer.h):
        name = f"transformer.h.{i}"
        qkv = linear(cache[f"{name}.ln_1"].data, block.attn.c_attn)  # (B, T, 3C)
        q, k, v = (heads(qkv[..., j * C:(j + 1) * C]) for j in range(3))
        w = softmax(q @ k.transpose(0, 1, 3, 2) / np.sqrt(C // NH), blocked)  # (B, nh, T, T)
        np.testing.assert_allclose(cache[f"{name}.attn.weights"].data, w, rtol=1e-11, atol=1e-15)
        attn = linear(merged(w @ v), block.attn.c_proj)
        np.testing.assert_allclose(cache[f"{name}.attn"].data, attn, rtol=1e-11, atol=1e-14)
        x_mid = x + attn  # the residual stream after attention
        np.testing.assert_allclose(cache[f"{name}.ln_2"].data, layer_norm(x_mid, block.ln_2), rtol=1e-11, atol=1e-14)
        x = x_mid + cache[f"{name}.mlp"].data
        np.testing.assert_allclose(cache[name].data, x, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("masked", [False, True], ids=["full", "padded"])
def test_bert_cached_weights_and_sublayers_equal_a_hand_computation(masked):
    model, _, _ = bert_mlm()
    for p in model.parameters():
        p.data += 0.05 * np.random.default_rng(1).standard_normal(p.shape)
    mask = RIGHT_PADDED if masked else None
    _, cache = model.run_with_cache(ids(), mask)
    blocked = np.zeros((B, 1, 1, T), dtype=bool) if mask is None else ~RIGHT_PADDED.astype(bool)[:, None, None, :]
    x = cache["bert.embeddings"].data
    for i, layer in enumerate(model.bert.encoder.layer):
        name, att = f"bert.encoder.layer.{i}", layer.attention.self
        q, k, v = (heads(linear(x, lin)) for lin in (att.query, att.key, att.value))
        w = softmax(q @ k.transpose(0, 1, 3, 2) / np.sqrt(C // NH), blocked)  # every query sees every real key
        got = cache[f"{name}.attention.self.weights"].data
        np.testing.assert_allclose(got, w, rtol=1e-11, atol=1e-15)
        assert not got[np.broadcast_to(blocked, got.shape)].any()
        np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-12)
        np.testing.assert_allclose(cache[f"{name}.attention.self"].data, merged(w @ v), rtol=1e-11, atol=1e-14)
        out = layer.attention.output
        x_mid = layer_norm(x + linear(merged(w @ v), out.dense), out.LayerNorm)
        np.testing.assert_allclose(cache[f"{name}.attention"].data, x_mid, rtol=1e-10, atol=1e-13)
        x = cache[name].data
        ffn = layer_norm(x_mid + cache[f"{name}.output.dense"].data, layer.output.LayerNorm)
        np.testing.assert_allclose(x, ffn, rtol=1e-10, atol=1e-13)
    np.testing.assert_array_equal(cache["bert.encoder"].data, x)  # the sequence output the MLM head reads


# ------------------------------------------------------------------ reference and fused layers
def assert_same_cache(got, want, rtol, atol):
    assert set(got) == set(want)
    for key, value in want.items():
        np.testing.assert_allclose(host(got[key]), host(value), rtol=rtol, atol=atol, err_msg=key)


@pytest.mark.parametrize("masked", [False, True], ids=["full", "padded"])
def test_fused_gpt_caches_what_the_reference_caches_in_float32(masked):
    manual_seed(3)
    model = GPT(gpt_config())
    mask = np.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1]]) if masked else None  # a left-padded row: empty queries
    ref_logits, ref = model.run_with_cache(ids(), mask)
    fused_logits, fused = fast.fuse(model).run_with_cache(ids(), mask)
    assert_same_cache(fused, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused_logits.data, ref_logits.data, rtol=1e-5, atol=1e-6)
    if masked:
        assert not fused["transformer.h.0.attn.weights"].data[1, :, :2].any()  # a query with no key: zeros


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("make", [gpt, gpt_classifier, bert_mlm], ids=["gpt", "gpt-classifier", "bert-mlm"])
def test_with_dropout_fused_and_reference_cache_the_same_and_the_weights_are_pre_dropout(make, train):
    manual_seed(4)
    model, _, attention = make(**({"dropout": 0.3} if make is not bert_mlm else
                                 {"hidden_dropout_prob": 0.3, "attention_probs_dropout_prob": 0.3}))
    model.train(train)
    caches = []
    for fuse in (fast.unfuse, fast.fuse):
        fuse(model)
        manual_seed(7)  # dropout masks from the global generator: the same stream on both paths
        caches.append(cached_run(model, ids(), RIGHT_PADDED))
    (ref_out, ref), (fused_out, fused) = caches
    assert_same_cache(fused, ref, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(fused_out.data, ref_out.data, rtol=1e-10, atol=1e-13)
    if not train:
        np.testing.assert_array_equal(fused_out.data, cached_run(model, ids(), RIGHT_PADDED)[0].data)  # no draw
    dropout = "attn_dropout" if make is not bert_mlm else "dropout"
    for i in range(LAYERS):
        w, dropped = fused[attention.format(i) + ".weights"].data, fused[f"{attention.format(i)}.{dropout}"].data
        np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-12)  # before dropout
        zeroed = (dropped == 0) & (w > 0)
        assert zeroed.any() == train  # in training the dropout module's entry is the dropped weights
        np.testing.assert_allclose(dropped[~zeroed], w[~zeroed] / (0.7 if train else 1.0), rtol=1e-12)


# ------------------------------------------------------------------ cut from the graph
@pytest.mark.parametrize("make", [gpt, bert_mlm], ids=["gpt", "bert-mlm"])
def test_the_cache_is_cut_from_the_graph_and_leaves_the_gradients_alone(make):
    model, _, _ = make()
    g = np.random.default_rng(2).standard_normal((B, T, V))
    logits, cache = model.run_with_cache(ids())
    values = [t for v in cache.values() for t in (v if isinstance(v, tuple) else (v,))]
    assert all(isinstance(t, Tensor) and t._ctx is None and not t.requires_grad for t in values)
    logits.backward(g)
    grads = {n: p.grad for n, p in model.named_parameters()}  # the MLM forward leaves the pooler's None
    model.zero_grad()
    plain = model(ids(), ids())[0] if make is gpt else model(ids())[0]
    plain.backward(g)
    assert {n for n, a in grads.items() if a is None} == {n for n, p in model.named_parameters() if p.grad is None}
    for name, p in model.named_parameters():
        if p.grad is not None:
            np.testing.assert_array_equal(grads[name], p.grad, err_msg=name)


@pytest.mark.parametrize("fused", [False, True], ids=["reference", "fast"])
def test_changing_the_cached_arrays_changes_neither_the_logits_nor_the_gradients_nor_the_next_run(fused):
    model, _, _ = gpt(pos_encoding="sinusoidal")  # its position table is a buffer the cache must not share
    model = fast.fuse(model) if fused else model
    g = np.random.default_rng(2).standard_normal((B, T, V))
    plain = model(ids(), ids())[0]
    plain.backward(g)
    want = {n: p.grad.copy() for n, p in model.named_parameters()}
    model.zero_grad()
    logits, cache = model.run_with_cache(ids())
    for value in cache.values():  # the logits themselves, and what the graph saved for backward
        value.data[...] = 1e6
    np.testing.assert_array_equal(logits.data, plain.data)
    logits.backward(g)
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p.grad, want[name], err_msg=name)
    np.testing.assert_array_equal(model.run_with_cache(ids())[0].data, plain.data)


# ------------------------------------------------------------------ no hook left behind
def hooked(model):
    return {name: len(m._forward_hooks) for name, m in model.named_modules() if m._forward_hooks}


@pytest.mark.parametrize("fused", [False, True], ids=["reference", "fast"])
def test_no_hook_is_left_behind_after_a_run_nor_after_a_forward_that_raises(fused):
    model, _, _ = gpt()
    model = fast.fuse(model) if fused else model
    model.run_with_cache(ids())
    assert hooked(model) == {}
    with pytest.raises(ValueError, match="exceeds block_size"):
        model.run_with_cache(np.zeros((1, 9), dtype=np.int64))  # longer than block_size 8
    assert hooked(model) == {}
    bert_model, _, _ = bert_mlm()
    with pytest.raises(ValueError, match="attention_mask"):
        bert_model.run_with_cache(ids(), np.ones((B, T + 1)))
    assert hooked(bert_model) == {}


def test_a_users_hook_stays_fires_and_its_replacement_is_what_the_cache_holds():
    model, _, _ = gpt()
    plain = model(ids(), ids())[0].data.copy()
    seen = []
    model.transformer.ln_f.register_forward_hook(lambda m, i, o: seen.append(1))
    model.lm_head.register_forward_hook(lambda m, i, o: o * 2.0)
    logits, cache = model.run_with_cache(ids())
    assert len(seen) == 1
    np.testing.assert_allclose(logits.data, 2.0 * plain, rtol=1e-14)
    np.testing.assert_array_equal(cache["lm_head"].data, logits.data)  # what the module handed on
    assert hooked(model) == {"transformer.ln_f": 1, "lm_head": 1}
    model(ids(), ids())
    assert len(seen) == 2


def test_a_hook_that_raises_inside_the_run_leaves_only_the_users_hooks():
    model, _, _ = gpt()

    def broken(module, inputs, output):
        raise ArithmeticError("a user's hook failed")

    handle = model.transformer.h[1].mlp.register_forward_hook(broken)
    with pytest.raises(ArithmeticError, match="a user's hook failed"):
        model.run_with_cache(ids())
    assert hooked(model) == {"transformer.h.1.mlp": 1}
    handle.remove()
    assert model.run_with_cache(ids())[0].shape == (B, T, V)


# ------------------------------------------------------------------ on the GPU's array module
@pytest.mark.parametrize("fused", [False, True], ids=["reference", "fast"])
@pytest.mark.parametrize("device", cuda_devices())
def test_on_cupy_the_cache_stays_on_the_device_and_equals_numpys(device, fused):
    caches = []
    for where in ("cpu", device):
        manual_seed(5)
        model = GPT(gpt_config()).to(device=where)  # float32: the GPU's fused kernels take it
        model = fast.fuse(model) if fused else model
        mask = backend.to_device(RIGHT_PADDED, where)
        caches.append(model.run_with_cache(backend.to_device(ids(), where), mask))
    (host_logits, on_host), (dev_logits, on_dev) = caches
    assert all(backend.device_of(v.data) == "cuda" for v in on_dev.values())
    assert_same_cache(on_dev, on_host, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(host(dev_logits), host_logits.data, rtol=1e-4, atol=1e-5)
    _, unpadded = model.run_with_cache(backend.to_device(ids(), device))  # the GPU's fused causal kernel, if any
    np.testing.assert_allclose(host(unpadded["transformer.h.1.attn.weights"]).sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("device", cuda_devices())
def test_on_cupy_bert_caches_what_numpy_caches(device):
    caches = []
    for where in ("cpu", device):
        manual_seed(6)
        model = fast.fuse(BertForMaskedLM(bert_config()).to(device=where))
        caches.append(model.run_with_cache(backend.to_device(ids(), where), backend.to_device(RIGHT_PADDED, where)))
    assert_same_cache(caches[1][1], caches[0][1], rtol=1e-4, atol=1e-5)
