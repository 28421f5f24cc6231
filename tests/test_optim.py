"""Tests for tinygrad_lm.optim: update formulas by hand, PyTorch as an oracle, exact resume.

The hand-formula tests spell each update out in NumPy inside the test; the PyTorch tests (skipped
when torch is not importable) replay the same float64 trajectories with torch.optim.
"""
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_lm.fast.adamw import FusedAdam, FusedAdamW
from tinygrad_lm.optim import (SGD, Adam, AdamW, CosineWarmupLR, clip_grad_norm_, cosine_warmup_lr,
                               param_groups)
from tinygrad_lm.engine.tensor import Tensor

from oracles import oracle  # tests/oracles.py


def param(shape, seed, dtype=np.float64):
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype), requires_grad=True)


def fixed_grads(shape, n, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for _ in range(n)]


# ----------------------------------------------------------------------------- hand formulas
def test_adamw_first_three_steps_match_the_written_out_formulas():
    lr, b1, b2, eps, wd = 0.1, 0.9, 0.999, 1e-8, 0.1
    p = param((2, 3), seed=0)
    p0 = p.data.copy()
    g1, g2, g3 = fixed_grads((2, 3), 3, seed=1)
    opt = AdamW([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)

    # step 1: m = (1-b1) g1, v = (1-b2) g1^2, so m_hat = g1 and v_hat = g1^2
    p.grad = g1
    opt.step()
    expected1 = p0 * (1 - lr * wd) - lr * g1 / (np.abs(g1) + eps)
    np.testing.assert_allclose(p.data, expected1, rtol=1e-14, atol=1e-15)

    # step 2
    p.grad = g2
    opt.step()
    m2 = b1 * (1 - b1) * g1 + (1 - b1) * g2
    v2 = b2 * (1 - b2) * g1**2 + (1 - b2) * g2**2
    m_hat2, v_hat2 = m2 / (1 - b1**2), v2 / (1 - b2**2)
    expected2 = expected1 * (1 - lr * wd) - lr * m_hat2 / (np.sqrt(v_hat2) + eps)
    np.testing.assert_allclose(p.data, expected2, rtol=1e-14, atol=1e-15)

    # step 3
    p.grad = g3
    opt.step()
    m3 = b1 * m2 + (1 - b1) * g3
    v3 = b2 * v2 + (1 - b2) * g3**2
    m_hat3, v_hat3 = m3 / (1 - b1**3), v3 / (1 - b2**3)
    expected3 = expected2 * (1 - lr * wd) - lr * m_hat3 / (np.sqrt(v_hat3) + eps)
    np.testing.assert_allclose(p.data, expected3, rtol=1e-14, atol=1e-15)

    state = opt.state_dict()["state"][0]
    assert state["step"] == 3
    np.testing.assert_allclose(state["exp_avg"], m3, rtol=1e-14)
    np.testing.assert_allclose(state["exp_avg_sq"], v3, rtol=1e-14)


def test_adam_weight_decay_is_added_to_the_gradient():
    lr, b1, b2, eps, wd = 0.05, 0.8, 0.99, 1e-8, 0.3
    p = param((4,), seed=2)
    p0 = p.data.copy()
    g1, g2 = fixed_grads((4,), 2, seed=3)
    opt = Adam([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)

    p.grad = g1
    opt.step()
    d1 = g1 + wd * p0  # L2-coupled: the decay goes through the moments
    expected1 = p0 - lr * d1 / (np.abs(d1) + eps)
    np.testing.assert_allclose(p.data, expected1, rtol=1e-14, atol=1e-15)

    p.grad = g2
    opt.step()
    d2 = g2 + wd * expected1
    m = b1 * (1 - b1) * d1 + (1 - b1) * d2
    v = b2 * (1 - b2) * d1**2 + (1 - b2) * d2**2
    expected2 = expected1 - lr * (m / (1 - b1**2)) / (np.sqrt(v / (1 - b2**2)) + eps)
    np.testing.assert_allclose(p.data, expected2, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_and_weight_decay_match_the_written_out_formulas(nesterov):
    lr, mu, wd = 0.1, 0.9, 0.01
    p = param((3, 2), seed=4)
    p0 = p.data.copy()
    g1, g2 = fixed_grads((3, 2), 2, seed=5)
    opt = SGD([p], lr=lr, momentum=mu, weight_decay=wd, nesterov=nesterov)

    p.grad = g1
    opt.step()
    d1 = g1 + wd * p0
    buf1 = d1  # first step: the buffer is the gradient itself
    expected1 = p0 - lr * (d1 + mu * buf1 if nesterov else buf1)
    np.testing.assert_allclose(p.data, expected1, rtol=1e-15, atol=1e-15)

    p.grad = g2
    opt.step()
    d2 = g2 + wd * expected1
    buf2 = mu * buf1 + d2
    expected2 = expected1 - lr * (d2 + mu * buf2 if nesterov else buf2)
    np.testing.assert_allclose(p.data, expected2, rtol=1e-15, atol=1e-15)


def test_plain_sgd_keeps_no_state():
    p = param((3,), seed=6)
    p0 = p.data.copy()
    p.grad = np.ones(3)
    opt = SGD([p], lr=0.5)
    opt.step()
    np.testing.assert_array_equal(p.data, p0 - 0.5)
    assert opt.state_dict()["state"] == {}


# ----------------------------------------------------------------------------- step mechanics
@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
                                  lambda ps: Adam(ps, lr=0.1, weight_decay=0.1),
                                  lambda ps: AdamW(ps, lr=0.1, weight_decay=0.1)])
def test_step_reads_grads_without_writing_them_and_keeps_float32(make):
    a, b = param((2, 3), seed=7, dtype=np.float32), param((2, 3), seed=8, dtype=np.float32)
    shared = np.broadcast_to(np.float32(0.5), (2, 3))  # read-only view, shared by both params
    a.grad = b.grad = shared
    a_data = a.data  # the array object must be updated in place (references stay valid)
    opt = make([a, b])
    for _ in range(2):
        opt.step()
    assert a.data is a_data
    assert a.data.dtype == np.float32 and b.data.dtype == np.float32
    np.testing.assert_array_equal(shared, np.full((2, 3), 0.5, np.float32))
    for entry in opt.state_dict()["state"].values():
        assert all(v.dtype == np.float32 for v in entry.values() if hasattr(v, "dtype"))


def test_params_without_grad_are_skipped_and_zero_grad_sets_none():
    a, b = param((2,), seed=9), param((2,), seed=10)
    b0 = b.data.copy()
    a.grad = np.ones(2)
    opt = AdamW([a, b], lr=0.1)
    opt.step()
    np.testing.assert_array_equal(b.data, b0)
    assert list(opt.state_dict()["state"]) == [0]
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_group_overrides_and_lr_set_by_the_training_loop():
    a, b = param((2,), seed=11), param((2,), seed=12)
    a0, b0 = a.data.copy(), b.data.copy()
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.0}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.0]
    a.grad = b.grad = np.ones(2)
    opt.step()
    np.testing.assert_allclose(a.data, a0 - 0.1)
    np.testing.assert_array_equal(b.data, b0)
    for g in opt.param_groups:
        g["lr"] = 1.0
    opt.step()
    np.testing.assert_allclose(a.data, a0 - 1.1)
    np.testing.assert_allclose(b.data, b0 - 1.0)


def test_constructor_errors_are_clear():
    a = param((2,), seed=13)
    with pytest.raises(TypeError, match="single Tensor"):
        SGD(a, lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        AdamW([], lr=0.1)
    with pytest.raises(ValueError, match="twice"):
        AdamW([{"params": [a]}, {"params": [a]}])
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        AdamW([{"params": [a], "momentum": 0.9}])
    with pytest.raises(ValueError, match="learning rate"):
        Adam([a], lr=-1.0)
    with pytest.raises(ValueError, match="betas"):
        Adam([a], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="nesterov"):
        SGD([a], lr=0.1, nesterov=True)


# ----------------------------------------------------------------------------- param groups helper
def test_param_groups_decays_matrices_and_embeddings_only():
    named = [("wte.weight", param((10, 4), 0)), ("ln_1.weight", param((4,), 1)), ("ln_1.bias", param((4,), 2)),
             ("fc.weight", param((4, 4), 3)), ("fc.bias", param((4,), 4)), ("scale", param((), 5))]
    frozen = Tensor(np.zeros((4, 4)), requires_grad=False)
    named.append(("frozen.weight", frozen))
    named.append(("lm_head.weight", named[0][1]))  # tied to wte: listed once
    decay, no_decay = param_groups(named, weight_decay=0.1)
    ids = {id(t): n for n, t in named[:6]}
    assert [ids[id(t)] for t in decay["params"]] == ["wte.weight", "fc.weight"]
    assert [ids[id(t)] for t in no_decay["params"]] == ["ln_1.weight", "ln_1.bias", "fc.bias", "scale"]
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    opt = AdamW([decay, no_decay], lr=1e-3)  # the groups go straight into an optimizer
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    with pytest.raises(TypeError, match="named_parameters"):
        param_groups([t for _, t in named], 0.1)


# ----------------------------------------------------------------------------- clipping
def test_clip_grad_norm_returns_total_and_clips_to_max_norm():
    a, b, c = param((3, 4), 0), param((5,), 1), param((2,), 2)
    ga, gb = fixed_grads((3, 4), 1, 3)[0] * 10, fixed_grads((5,), 1, 4)[0] * 10
    a.grad, b.grad = ga, gb  # c has no grad: skipped
    total = math.sqrt(np.sum(ga**2) + np.sum(gb**2))
    got = clip_grad_norm_([a, b, c], max_norm=1.0)
    assert isinstance(got, float)
    assert got == pytest.approx(total, rel=1e-12)
    new_total = math.sqrt(np.sum(a.grad**2) + np.sum(b.grad**2))
    assert new_total == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(a.grad, ga / (total + 1e-6), rtol=1e-14)
    assert c.grad is None


def test_clip_grad_norm_leaves_small_grads_alone():
    a = param((3,), 0)
    g = np.array([0.1, -0.2, 0.2])
    a.grad = g
    assert clip_grad_norm_([a], 1.0) == pytest.approx(0.3, rel=1e-12)
    assert a.grad is g
    assert clip_grad_norm_([param((2,), 1)], 1.0) == 0.0  # no grads at all


def test_clip_grad_norm_does_not_scale_a_shared_grad_twice():
    a, b = param((2,), 0), param((2,), 1)
    shared = np.broadcast_to(np.array([3.0, 4.0]), (2,))  # read-only, the same object on both
    a.grad = b.grad = shared
    total = clip_grad_norm_([a, b], 1.0)
    assert total == pytest.approx(math.sqrt(50.0))
    expected = np.array([3.0, 4.0]) / (math.sqrt(50.0) + 1e-6)
    np.testing.assert_allclose(a.grad, expected, rtol=1e-14)
    np.testing.assert_allclose(b.grad, expected, rtol=1e-14)
    np.testing.assert_array_equal(shared, [3.0, 4.0])


def test_clip_grad_norm_keeps_float32_and_rejects_bad_max_norm():
    a = param((1000,), 0, dtype=np.float32)
    a.grad = np.full(1000, 1e3, np.float32)
    total = clip_grad_norm_(a, 1.0)  # a single Tensor is accepted too
    assert total == pytest.approx(1e3 * math.sqrt(1000), rel=1e-9)
    assert a.grad.dtype == np.float32
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_([a], 0.0)


def test_clip_grad_norm_of_float32_grads_whose_squares_overflow_float32():
    a, b = param((4,), 0, dtype=np.float32), param((3,), 1, dtype=np.float32)
    a.grad, b.grad = np.full(4, 1e30, np.float32), np.ones(3, np.float32)  # (1e30)^2 > float32 max
    total = clip_grad_norm_([a, b], 1.0)
    assert total == pytest.approx(math.sqrt(4e60 + 3), rel=1e-6)
    np.testing.assert_allclose(a.grad, 0.5, rtol=1e-6)
    assert a.grad.dtype == np.float32


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=8), st.floats(0.01, 100.0))
def test_clip_grad_norm_never_leaves_a_norm_above_max_norm(values, max_norm):
    a = Tensor(np.zeros(len(values)), requires_grad=True)
    a.grad = np.array(values)
    total = clip_grad_norm_([a], max_norm)
    assert total == pytest.approx(float(np.linalg.norm(values)), rel=1e-12, abs=1e-300)
    assert np.linalg.norm(a.grad) <= max_norm * (1 + 1e-12)


# ----------------------------------------------------------------------------- state_dict / resume
def quadratic_grads(params, targets, scales):
    """Gradients of sum_i scales[i]/2 * ||p_i - t_i||^2 + a cross term, computed in NumPy."""
    a, b = params
    ga = scales[0] * (a - targets[0]) + 0.1 * np.sin(b).sum()
    gb = scales[1] * (b - targets[1]) + 0.1 * np.cos(b) * (a.sum())
    return [ga, gb]


def setup_problem(dtype=np.float64):
    rng = np.random.default_rng(42)
    init = [rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal(4).astype(dtype)]
    targets = [rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal(4).astype(dtype)]
    return init, targets, (1.0, 3.0)


OPTIMIZERS = {
    "sgd": lambda groups: SGD(groups, lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=True),
    "adam": lambda groups: Adam(groups, lr=0.05, betas=(0.8, 0.95), weight_decay=0.01),
    "adamw": lambda groups: AdamW(groups, lr=0.05, betas=(0.8, 0.95), weight_decay=0.1),
    # the fast path's in-place update (tinygrad_lm/fast/adamw.py) must resume bit for bit too
    "adam_fast": lambda groups: FusedAdam(groups, lr=0.05, betas=(0.8, 0.95), weight_decay=0.01),
    "adamw_fast": lambda groups: FusedAdamW(groups, lr=0.05, betas=(0.8, 0.95), weight_decay=0.1),
}


def run_steps(opt, params, targets, scales, start, n, lr_max=0.05):
    for step in range(start, start + n):
        for g in opt.param_groups:
            g["lr"] = cosine_warmup_lr(step, lr_max, 2, 8, lr_max / 10)
        opt.zero_grad()
        for p, g in zip(params, quadratic_grads([p.data for p in params], targets, scales)):
            p.grad = g
        opt.step()


def build(name, dtype):
    init, targets, scales = setup_problem(dtype)
    params = [Tensor(x.copy(), requires_grad=True) for x in init]
    groups = param_groups([("w", params[0]), ("b", params[1])], 0.1)
    return OPTIMIZERS[name](groups), params, targets, scales


def json_round_trip(sd):
    """What a checkpoint does to a state_dict: int keys become str, tuples become lists."""
    arrays = {}

    def split(tree, prefix):
        if isinstance(tree, dict):
            return {str(k): split(v, f"{prefix}/{k}") for k, v in tree.items()}
        if isinstance(tree, (list, tuple)):
            return [split(v, f"{prefix}/{i}") for i, v in enumerate(tree)]
        if isinstance(tree, np.ndarray):
            arrays[prefix] = tree
            return {"__array__": prefix}
        return tree

    def join(tree):
        if isinstance(tree, dict):
            return arrays[tree["__array__"]] if set(tree) == {"__array__"} else {k: join(v) for k, v in tree.items()}
        if isinstance(tree, list):
            return [join(v) for v in tree]
        return tree

    return join(json.loads(json.dumps(split(sd, "optim"))))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("through_json", [False, True])
def test_resume_from_state_dict_is_bit_for_bit(name, dtype, through_json):
    k = 4
    opt, params, targets, scales = build(name, dtype)
    run_steps(opt, params, targets, scales, 0, 2 * k)

    opt1, params1, _, _ = build(name, dtype)
    run_steps(opt1, params1, targets, scales, 0, k)
    sd = opt1.state_dict()
    saved_params = [p.data.copy() for p in params1]
    if through_json:
        sd = json_round_trip(sd)
    opt2, params2, _, _ = build(name, dtype)
    for p, saved in zip(params2, saved_params):
        p.data[...] = saved
    for g in opt2.param_groups:  # hyperparameters must come back from the state_dict too
        g["weight_decay"] = 0.5
    opt2.load_state_dict(sd)
    run_steps(opt2, params2, targets, scales, k, k)

    for p, q in zip(params, params2):
        assert q.data.dtype == dtype
        assert np.array_equal(p.data, q.data)
    assert json.dumps(opt.state_dict()["param_groups"]) == json.dumps(opt2.state_dict()["param_groups"])


def test_state_dict_arrays_are_independent_numpy_copies():
    opt, params, targets, scales = build("adamw", np.float64)
    run_steps(opt, params, targets, scales, 0, 2)
    sd = opt.state_dict()
    before = opt.state_dict()["state"][0]["exp_avg"].copy()
    sd["state"][0]["exp_avg"] += 1.0  # editing the snapshot must not touch the optimizer
    assert isinstance(sd["state"][0]["exp_avg"], np.ndarray)
    np.testing.assert_array_equal(opt.state_dict()["state"][0]["exp_avg"], before)
    opt2, params2, _, _ = build("adamw", np.float64)
    opt2.load_state_dict(sd)
    run_steps(opt2, params2, targets, scales, 2, 1)  # stepping must not write into `sd`
    assert opt2.state_dict()["state"][0]["step"] == 3
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"], before + 1.0)
    assert sd["param_groups"][0]["params"] == [0] and sd["param_groups"][1]["params"] == [1]


def test_load_state_dict_errors_name_what_is_wrong():
    opt, params, targets, scales = build("adamw", np.float64)
    run_steps(opt, params, targets, scales, 0, 1)
    sd = opt.state_dict()

    one_group = AdamW([param((3, 4), 0), param((4,), 1)])
    with pytest.raises(ValueError, match="2 parameter group.*has 1"):
        one_group.load_state_dict(sd)

    three = AdamW([{"params": [param((3, 4), 0), param((2,), 2)]}, {"params": [param((4,), 1)]}])
    with pytest.raises(ValueError, match="group 0.*1 parameter.*has 2"):
        three.load_state_dict(sd)

    transposed = AdamW([{"params": [param((4, 3), 0)]}, {"params": [param((4,), 1)]}])
    with pytest.raises(ValueError, match=r"parameter 0.*exp_avg.*\(3, 4\).*\(4, 3\)"):
        transposed.load_state_dict(sd)
    assert transposed.state == [{}, {}]  # nothing changed on failure

    sgd = SGD([{"params": [param((3, 4), 0)]}, {"params": [param((4,), 1)]}], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="momentum_buffer"):
        sgd.load_state_dict(sd)


# ----------------------------------------------------------------------------- schedule
def test_schedule_warmup_endpoints_cosine_and_floor():
    lr = lambda s: cosine_warmup_lr(s, 1.0, 4, 10, 0.1)  # noqa: E731
    assert lr(0) == pytest.approx(1.0 / 5)
    assert lr(3) == pytest.approx(4.0 / 5)
    assert lr(4) == 1.0  # the peak, exactly at the end of warmup
    assert lr(7) == pytest.approx(0.55)  # half way through the cosine: (max + min) / 2
    decay = [lr(s) for s in range(4, 11)]
    assert all(x > y for x, y in zip(decay, decay[1:]))
    assert lr(10) == lr(11) == lr(10_000) == 0.1
    assert [cosine_warmup_lr(s, 1.0, 0, 0, 0.0) for s in (0, 5)] == [0.0, 0.0]
    assert cosine_warmup_lr(0, 1.0, 0, 10, 0.0) == 1.0  # no warmup: starts at the peak


def test_schedule_rejects_bad_arguments():
    with pytest.raises(ValueError, match="max_steps"):
        cosine_warmup_lr(0, 1.0, 10, 5, 0.1)
    with pytest.raises(ValueError, match="max_lr"):
        cosine_warmup_lr(0, -1.0, 1, 5, 0.0)
    with pytest.raises(ValueError, match="min_lr"):
        cosine_warmup_lr(0, 1.0, 1, 5, 2.0)
    with pytest.raises(ValueError, match="step"):
        cosine_warmup_lr(-1, 1.0, 1, 5, 0.1)


def test_cosine_warmup_scheduler_sets_group_lrs_and_resumes():
    a, b = param((2,), 0), param((2,), 1)
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=1.0)
    sched = CosineWarmupLR(opt, warmup_steps=2, max_steps=6, min_lr_ratio=0.1)
    seen = [sched.get_last_lr()]
    for _ in range(7):
        sched.step()
        seen.append(sched.get_last_lr())
    for step, (l1, l2) in enumerate(seen):
        assert l1 == pytest.approx(cosine_warmup_lr(step, 1.0, 2, 6, 0.1))
        assert l2 == pytest.approx(cosine_warmup_lr(step, 0.5, 2, 6, 0.05))
    opt2 = SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=1.0)
    sched2 = CosineWarmupLR(opt2, warmup_steps=2, max_steps=6)
    sched2.load_state_dict(json.loads(json.dumps(sched.state_dict())))
    assert sched2.get_last_lr() == seen[-1]


# ----------------------------------------------------------------------------- PyTorch oracle
TORCH_OPTIMIZERS = [
    ("sgd", dict(lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=False)),
    ("sgd", dict(lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=True)),
    ("sgd", dict(lr=0.05, momentum=0.0, weight_decay=0.0, nesterov=False)),
    ("adam", dict(lr=0.05, betas=(0.8, 0.95), eps=1e-8, weight_decay=0.01)),
    ("adamw", dict(lr=0.05, betas=(0.8, 0.95), eps=1e-8, weight_decay=0.1)),
    ("adam_fast", dict(lr=0.05, betas=(0.8, 0.95), eps=1e-8, weight_decay=0.01)),
    ("adamw_fast", dict(lr=0.05, betas=(0.8, 0.95), eps=1e-8, weight_decay=0.1)),
]


@pytest.mark.oracle
@pytest.mark.parametrize("name,kwargs", TORCH_OPTIMIZERS)
def test_trajectory_matches_torch_in_float64(name, kwargs):
    torch = oracle("torch")
    ours = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "adam_fast": FusedAdam, "adamw_fast": FusedAdamW}[name]
    theirs = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
              "adam_fast": torch.optim.Adam, "adamw_fast": torch.optim.AdamW}[name]
    init, targets, scales = setup_problem(np.float64)
    params = [Tensor(x.copy(), requires_grad=True) for x in init]
    tparams = [torch.tensor(x.copy(), dtype=torch.float64, requires_grad=True) for x in init]
    # two groups (decay on the matrix only, a different lr on the vector), as a model would have
    opt = ours([{"params": [params[0]]}, {"params": [params[1]], "weight_decay": 0.0}], **kwargs)
    topt = theirs([{"params": [tparams[0]]}, {"params": [tparams[1]], "weight_decay": 0.0}], **kwargs)
    for step in range(10):
        lr = cosine_warmup_lr(step, kwargs["lr"], 3, 10, kwargs["lr"] / 10)
        for g, tg in zip(opt.param_groups, topt.param_groups):
            g["lr"] = tg["lr"] = lr
        grads = quadratic_grads([p.data for p in params], targets, scales)
        tgrads = quadratic_grads([t.detach().numpy() for t in tparams], targets, scales)
        for p, t, g, tg in zip(params, tparams, grads, tgrads):
            p.grad = g
            t.grad = torch.from_numpy(tg.copy())
        opt.step()
        topt.step()
        for p, t in zip(params, tparams):
            np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.oracle
def test_clip_grad_norm_matches_torch():
    torch = oracle("torch")
    grads = [g * 5 for g in (fixed_grads((3, 4), 1, 0)[0], fixed_grads((7,), 1, 1)[0])]
    params = [param(g.shape, i) for i, g in enumerate(grads)]
    tparams = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, t, g in zip(params, tparams, grads):
        p.grad, t.grad = g, torch.from_numpy(g.copy())
    total = clip_grad_norm_(params, 1.0)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, 1.0)
    assert total == pytest.approx(float(ttotal), rel=1e-12)
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12, atol=1e-15)
