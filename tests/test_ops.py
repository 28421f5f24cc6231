"""Every op: gradients checked against central differences (float64, random output weighting)
on shapes and values drawn by hypothesis, and forward values compared with plain NumPy.

Shapes are tiny (sides 1..3, 0 to 3 dims: size-1 axes, 0-d tensors and broadcasting all come
up) because each element costs two forwards. Values are kept away from the points where an
op is not differentiable: relu at 0, max with ties, log/sqrt of non-positive numbers,
division by ~0. Also here: float32 in -> float32 out (and float32 gradients) for every op,
and the shape-mismatch error messages, which name the op and the shapes.
"""
import math
import operator

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinygrad_lm
from tinygrad_lm import Function, Tensor
from tinygrad_lm.engine import functional as F, ops
from tinygrad_lm.testing import arrays, away_from, broadcastable_shapes, check_gradients, shapes
from tinygrad_lm.testing import positive as positive_values

from oracles import oracle  # tests/oracles.py

EXAMPLES = settings(max_examples=20)
FEW = settings(max_examples=12)

# ----------------------------------------------------------------- strategies
# tinygrad_lm.testing's strategies, the ones users get; mutually broadcastable pairs and triples
# (both operands stretched) come from hypothesis.extra.numpy directly.
SHAPES = shapes(max_dims=3, max_side=3)
SHAPES_1D = shapes(min_dims=1, max_dims=3, max_side=3)
PAIRS = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=3)
TRIPLES = hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, min_side=1, max_side=3)


def values(shape, lo=-2.0, hi=2.0):
    """float64 arrays with bounded, finite elements."""
    return arrays(shape, elements=st.floats(lo, hi, allow_nan=False, allow_infinity=False))


def away_from_zero(shape):
    """Either sign, magnitude in [0.3, 2]: safe for division, relu, negative powers."""
    return arrays(shape, elements=away_from(0.0, margin=0.3))


def positive(shape):
    return arrays(shape, elements=positive_values(0.2, 3.0))


def distinct(shape):
    """Unique values on a 0.1 grid: max has no ties, and eps=1e-6 never swaps an order."""
    return arrays(shape, elements=st.integers(-40, 40).map(lambda i: i / 10), unique=True)


@st.composite
def axis_for(draw, ndim):
    """None, an int (possibly negative) or a tuple of axes, valid for `ndim` dimensions."""
    choices = [st.none(), hnp.valid_tuple_axes(ndim)]
    if ndim:
        choices.append(st.integers(-ndim, ndim - 1))
    return draw(st.one_of(*choices))


@st.composite
def reduction_inputs(draw, arrays=values):
    """(x, axis, keepdims) for a reduction: x drawn by arrays(shape), axis any valid axis argument."""
    shape = draw(SHAPES)
    return draw(arrays(shape)), draw(axis_for(len(shape))), draw(st.booleans())


def leaf(a):
    return Tensor(a, requires_grad=True)


def close(got, want, rtol=1e-12, atol=1e-14):
    """Forward check in float64 with tight tolerances (exact where we call the same NumPy)."""
    got = got.data if isinstance(got, Tensor) else got
    assert got.shape == np.shape(want), (got.shape, np.shape(want))
    assert got.dtype == np.float64 or np.asarray(want).dtype != np.float64
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


# ----------------------------------------------------------------- binary arithmetic
BINARY = {
    "add": (operator.add, ops.add, np.add),
    "sub": (operator.sub, ops.sub, np.subtract),
    "mul": (operator.mul, ops.mul, np.multiply),
    "div": (operator.truediv, ops.div, np.divide),
}


@pytest.mark.parametrize("name", BINARY)
@EXAMPLES
@given(data=st.data())
def test_binary_ops_broadcast(name, data):
    sa, sb = data.draw(PAIRS).input_shapes
    a = data.draw(values(sa))
    b = data.draw(away_from_zero(sb) if name == "div" else values(sb))
    op, fn, ref = BINARY[name]
    close(op(Tensor(a), Tensor(b)), ref(a, b), rtol=0, atol=0)
    close(fn(Tensor(a), Tensor(b)), ref(a, b), rtol=0, atol=0)
    check_gradients(op, a, b)


@pytest.mark.parametrize("name", BINARY)
@FEW
@given(data=st.data())
def test_binary_ops_with_a_scalar_on_either_side(name, data):
    x = data.draw(away_from_zero(data.draw(SHAPES)))
    c = data.draw(st.sampled_from([2, -0.75, 1.5]))
    op, _, ref = BINARY[name]
    close(op(Tensor(x), c), ref(x, c), rtol=0, atol=0)
    close(op(c, Tensor(x)), ref(c, x), rtol=0, atol=0)
    check_gradients(lambda t: op(t, c), x)
    check_gradients(lambda t: op(c, t), x)


def test_binary_grad_shapes_follow_the_operands():
    a, b = leaf(np.ones((2, 1, 3))), leaf(np.ones((4, 1)))
    (a * b).sum().backward()
    assert a.grad.shape == (2, 1, 3) and b.grad.shape == (4, 1)
    np.testing.assert_array_equal(a.grad, np.full((2, 1, 3), 4.0))
    np.testing.assert_array_equal(b.grad, np.full((4, 1), 6.0))


def test_only_the_operand_that_requires_grad_gets_one():
    a, b = leaf(np.array([1.0, 2.0])), Tensor(np.array([3.0, 4.0]))
    for op in (operator.mul, operator.truediv, operator.add, operator.sub):
        a.grad = None
        op(a, b).sum().backward()
        assert a.grad is not None and b.grad is None


@EXAMPLES
@given(x=SHAPES.flatmap(values))
def test_neg(x):
    close(-Tensor(x), -x, rtol=0, atol=0)
    close(ops.neg(Tensor(x)), -x, rtol=0, atol=0)
    check_gradients(lambda t: -t, x)


@pytest.mark.parametrize("c", [2, 3, 0, 1, -1, -2, 0.5, 1.5, -0.5, 2.5])
@FEW
@given(data=st.data())
def test_pow_scalar_exponent(c, data):
    shape = data.draw(SHAPES)
    if isinstance(c, int) and c >= 0:
        x = data.draw(values(shape))
    elif isinstance(c, int):
        x = data.draw(away_from_zero(shape))
    else:  # fractional powers need a positive base
        x = data.draw(positive(shape))
    close(Tensor(x) ** c, x ** c)
    close(ops.pow(Tensor(x), c), x ** c)
    check_gradients(lambda t: t ** c, x)


def test_pow_rejects_tensor_exponent_and_non_tensor_base():
    with pytest.raises(TypeError, match="pow: the exponent must be a scalar"):
        Tensor([2.0]) ** Tensor([2.0])
    with pytest.raises(TypeError, match="pow: needs at least one tensor"):
        ops.pow(2.0, 3)


# ----------------------------------------------------------------- matmul
@st.composite
def matmul_operands(draw):
    n, k, m = (draw(st.integers(1, 3)) for _ in range(3))
    ba, bb = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2,
                                                    min_side=1, max_side=3)).input_shapes
    sa = (k,) if draw(st.integers(0, 5)) == 0 else ba + (n, k)  # sometimes a vector (NumPy rules)
    sb = (k,) if draw(st.integers(0, 5)) == 0 else bb + (k, m)
    return draw(values(sa)), draw(values(sb))


@EXAMPLES
@given(ab=matmul_operands())
def test_matmul_batched_and_broadcast(ab):
    a, b = ab
    close(Tensor(a) @ Tensor(b), a @ b, rtol=1e-13)
    close(ops.matmul(Tensor(a), Tensor(b)), a @ b, rtol=1e-13)
    check_gradients(operator.matmul, a, b)


@pytest.mark.parametrize("sa, sb", [
    ((2, 3, 4), (4, 5)),              # (B, T, C) @ (C, D): a linear layer
    ((2, 2, 3, 4), (2, 2, 4, 3)),     # (B, h, T, d) @ (B, h, d, T): attention scores
    ((2, 2, 3, 3), (2, 2, 3, 4)),     # (B, h, T, T) @ (B, h, T, d): attention output
    ((3, 1, 2, 4), (5, 4, 2)),        # batch axes broadcast both ways
    ((4,), (4,)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,)),
])
def test_matmul_gpt_shapes(sa, sb, rng):
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    close(Tensor(a) @ Tensor(b), np.matmul(a, b), rtol=1e-13)
    check_gradients(operator.matmul, a, b)


@pytest.mark.parametrize("sa, sb", [((2, 3, 0), (0, 4)), ((2, 0, 3), (3, 4)), ((2, 3, 4), (4, 0)), ((0, 3), (3, 2))])
def test_matmul_zero_size_operands(sa, sb, rng):
    a, b = leaf(rng.standard_normal(sa)), leaf(rng.standard_normal(sb))
    y = a @ b
    close(y, a.data @ b.data, rtol=0, atol=0)  # k = 0 gives zeros
    gy = rng.standard_normal(y.shape)
    y.backward(gy)
    assert a.grad.shape == sa and b.grad.shape == sb  # empty sums are zeros, not errors
    np.testing.assert_allclose(a.grad, gy @ b.data.T, rtol=1e-12)
    rows = list(range(len(sa) - 1))  # sum a^T gy over every row axis
    np.testing.assert_allclose(b.grad, np.tensordot(a.data, gy, axes=(rows, rows)), rtol=1e-12)


def test_matmul_with_raw_array_on_either_side(rng):
    a, w = rng.standard_normal((2, 3)), rng.standard_normal((3, 2))
    check_gradients(lambda t: t @ w, a)
    check_gradients(lambda t: a @ t, w)


# ----------------------------------------------------------------- reductions
@pytest.mark.parametrize("name", ["sum", "mean"])
@EXAMPLES
@given(case=reduction_inputs())
def test_sum_mean(name, case):
    x, axis, keepdims = case
    ref = getattr(np, name)(x, axis=axis, keepdims=keepdims)
    close(getattr(Tensor(x), name)(axis=axis, keepdims=keepdims), ref)
    close(getattr(ops, name)(Tensor(x), axis, keepdims), ref)
    check_gradients(lambda t: getattr(t, name)(axis=axis, keepdims=keepdims), x)


@EXAMPLES
@given(case=reduction_inputs(distinct))
def test_max_without_ties(case):
    x, axis, keepdims = case
    close(Tensor(x).max(axis=axis, keepdims=keepdims), np.max(x, axis=axis, keepdims=keepdims), rtol=0, atol=0)
    check_gradients(lambda t: t.max(axis=axis, keepdims=keepdims), x)


def test_max_splits_the_gradient_among_ties():
    x = leaf(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]))
    x.max(axis=1).backward(np.array([1.0, 6.0]))
    np.testing.assert_array_equal(x.grad, [[0.0, 0.5, 0.5], [2.0, 2.0, 2.0]])


@pytest.mark.parametrize("ddof", [0, 1])
@EXAMPLES
@given(case=reduction_inputs())
def test_var(ddof, case):
    x, axis, keepdims = case
    axes = range(x.ndim) if axis is None else (axis,) if isinstance(axis, int) else axis
    count = int(np.prod([x.shape[a] for a in axes]))
    assume(count - ddof > 0)
    close(Tensor(x).var(axis=axis, keepdims=keepdims, ddof=ddof),
          np.var(x, axis=axis, keepdims=keepdims, ddof=ddof), rtol=1e-12, atol=1e-13)
    check_gradients(lambda t: t.var(axis=axis, keepdims=keepdims, ddof=ddof), x)


def test_reductions_on_a_zero_dim_tensor_accept_axis_0_and_minus_1():
    for axis in (0, -1, (), None):
        for name in ("sum", "mean", "max", "var"):
            y = getattr(Tensor(np.array(2.5)), name)(axis=axis)
            assert y.shape == () and y.item() == (0.0 if name == "var" else 2.5)


def test_reduction_errors():
    with pytest.raises(ValueError, match="axis 2 is out of range for a tensor with 2 dimensions"):
        Tensor(np.ones((2, 3))).sum(axis=2)
    with pytest.raises(ValueError, match="var: 1 elements with ddof=1"):
        Tensor(np.ones((2, 1))).var(axis=1, ddof=1)
    with pytest.raises(ValueError, match=r"max of an empty tensor of shape \(0, 2\)"):
        Tensor(np.ones((0, 2))).max()


# ----------------------------------------------------------------- elementwise functions
def _gelu_ref(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


UNARY = {
    "exp": (np.exp, values),
    "log": (np.log, positive),
    "sqrt": (np.sqrt, positive),
    "tanh": (np.tanh, values),
    "sigmoid": (lambda x: 1 / (1 + np.exp(-x)), lambda s: values(s, -4, 4)),
    "relu": (lambda x: np.maximum(x, 0), away_from_zero),
    "gelu": (_gelu_ref, lambda s: values(s, -4, 4)),
}


@pytest.mark.parametrize("name", UNARY)
@EXAMPLES
@given(data=st.data())
def test_unary(name, data):
    ref, strategy = UNARY[name]
    x = data.draw(strategy(data.draw(SHAPES)))
    close(getattr(Tensor(x), name)(), ref(x), rtol=1e-13, atol=1e-15)
    close(getattr(tinygrad_lm, name)(Tensor(x)), ref(x), rtol=1e-13, atol=1e-15)
    check_gradients(lambda t: getattr(t, name)(), x)


def test_relu_gradient_is_zero_at_zero_and_below():
    x = leaf(np.array([-1.0, 0.0, 2.0]))
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 1.0])


def test_sigmoid_and_tanh_saturate_without_overflow():
    x = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0])
    with np.errstate(all="raise"):
        s = Tensor(x).sigmoid().data
        g = Tensor(x).gelu().data
    # 0.5 (1 + tanh(x / 2)) is accurate to ~1e-16 absolute; far in the left tail it rounds to 0
    np.testing.assert_allclose(s, [0.0, 1 / (1 + np.exp(40.0)), 0.5, 1 / (1 + np.exp(-40.0)), 1.0], rtol=1e-15, atol=1e-16)
    np.testing.assert_array_equal(g[[0, 2, 4]], [-0.0, 0.0, 1000.0])


@pytest.mark.oracle
def test_gelu_matches_torch_tanh_approximation():
    torch = oracle("torch")
    x = np.linspace(-6, 6, 49)
    want = torch.nn.functional.gelu(torch.tensor(x), approximate="tanh").numpy()
    np.testing.assert_allclose(Tensor(x).gelu().data, want, rtol=1e-13, atol=1e-15)  # 1 + tanh cancels in the left tail
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.gelu(xt, approximate="tanh").sum().backward()
    t = leaf(x)
    t.gelu().sum().backward()
    np.testing.assert_allclose(t.grad, xt.grad.numpy(), rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------- shape ops
@st.composite
def reshape_case(draw):
    shape = draw(SHAPES)
    size = int(np.prod(shape))
    targets = [(size,), (-1,), tuple(reversed(shape)), (1,) + shape, shape + (1,), (size, 1), (1, -1)]
    if size == 1:
        targets.append(())
    if len(shape) >= 2:
        targets.append((shape[0], -1))
    return draw(values(shape)), draw(st.sampled_from(targets))


@EXAMPLES
@given(case=reshape_case())
def test_reshape(case):
    x, target = case
    close(Tensor(x).reshape(target), x.reshape(target), rtol=0, atol=0)
    close(Tensor(x).reshape(*target), x.reshape(target), rtol=0, atol=0)
    close(Tensor(x).view(target), x.reshape(target), rtol=0, atol=0)
    check_gradients(lambda t: t.reshape(target), x)


@EXAMPLES
@given(data=st.data())
def test_permute(data):
    shape = data.draw(SHAPES)
    x = data.draw(values(shape))
    axes = tuple(data.draw(st.permutations(range(len(shape)))))
    close(Tensor(x).permute(*axes), np.transpose(x, axes), rtol=0, atol=0)
    close(Tensor(x).permute(axes), np.transpose(x, axes), rtol=0, atol=0)
    close(Tensor(x).T, x.T, rtol=0, atol=0)
    check_gradients(lambda t: t.permute(*axes), x)
    check_gradients(lambda t: t.T, x)


@EXAMPLES
@given(data=st.data())
def test_transpose(data):
    shape = data.draw(shapes(min_dims=2, max_dims=4, max_side=3))
    x = data.draw(values(shape))
    nd = len(shape)
    a0, a1 = data.draw(st.integers(-nd, nd - 1)), data.draw(st.integers(-nd, nd - 1))
    close(Tensor(x).transpose(a0, a1), np.swapaxes(x, a0, a1), rtol=0, atol=0)
    close(Tensor(x).transpose(), np.swapaxes(x, -2, -1), rtol=0, atol=0)
    check_gradients(lambda t: t.transpose(a0, a1), x)


@EXAMPLES
@given(data=st.data())
def test_getitem_basic_indices(data):
    shape = data.draw(SHAPES)
    x = data.draw(values(shape))
    index = data.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    close(Tensor(x)[index], x[index], rtol=0, atol=0)
    check_gradients(lambda t: t[index], x)


@EXAMPLES
@given(data=st.data())
def test_getitem_integer_array_indices_with_repeats(data):
    shape = data.draw(SHAPES_1D)
    x = data.draw(values(shape))
    index = data.draw(hnp.integer_array_indices(
        shape, result_shape=hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=5)))
    close(Tensor(x)[index], x[index], rtol=0, atol=0)
    check_gradients(lambda t: t[index], x)


def test_getitem_repeated_indices_count_every_repeat(rng):
    x = leaf(np.arange(5.0))
    idx = np.array([0, 3, 0, 0, 4, 3])
    w = rng.standard_normal(6)
    (x[idx] * w).sum().backward()
    np.testing.assert_allclose(x.grad, [w[0] + w[2] + w[3], 0.0, 0.0, w[1] + w[5], w[4]], rtol=1e-15)
    y = leaf(np.arange(5.0))
    y[[1, 1, 1]].sum().backward()  # a list index is advanced indexing too
    np.testing.assert_array_equal(y.grad, [0.0, 3.0, 0.0, 0.0, 0.0])
    z = leaf(np.arange(5.0))
    z[Tensor([2, 2])].sum().backward()  # and an integer Tensor
    np.testing.assert_array_equal(z.grad, [0.0, 0.0, 2.0, 0.0, 0.0])


@pytest.mark.parametrize("index", [
    (slice(None), [0, 0, 2]),                     # slice + repeated int array
    ([1, 0, 1], slice(1, None)),
    (np.array([[0, 1], [1, 1]]), np.array([[2, 2], [0, 2]])),
    (Ellipsis, np.array([-1, -1])),
    np.array([[True, False, True], [False, True, True]]),  # boolean mask
    (np.array([True, False]), slice(None, None, -1)),
    (None, 1, [2, 0]),
])
def test_getitem_mixed_indices(index, rng):
    x = rng.standard_normal((2, 3))
    close(Tensor(x)[index], x[index], rtol=0, atol=0)
    check_gradients(lambda t: t[index], x)


def test_getitem_out_of_range_names_the_shape():
    with pytest.raises(IndexError, match=r"getitem: .*\(tensor shape \(2, 3\)\)"):
        Tensor(np.ones((2, 3)))[5]


@st.composite
def concat_case(draw):
    shape = draw(SHAPES_1D)
    nd = len(shape)
    axis = draw(st.integers(-nd, nd - 1))
    sizes = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    shapes = [tuple(s if i != axis % nd else n for i, s in enumerate(shape)) for n in sizes]
    return [draw(values(s)) for s in shapes], axis


@EXAMPLES
@given(case=concat_case())
def test_concat(case):
    xs, axis = case
    close(ops.concat([Tensor(x) for x in xs], axis=axis), np.concatenate(xs, axis=axis), rtol=0, atol=0)
    close(tinygrad_lm.cat([Tensor(x) for x in xs], axis=axis), np.concatenate(xs, axis=axis), rtol=0, atol=0)
    check_gradients(lambda *ts: ops.concat(ts, axis=axis), *xs)


@EXAMPLES
@given(data=st.data())
def test_stack(data):
    shape = data.draw(SHAPES)
    n = data.draw(st.integers(1, 3))
    xs = [data.draw(values(shape)) for _ in range(n)]
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    close(ops.stack([Tensor(x) for x in xs], axis=axis), np.stack(xs, axis=axis), rtol=0, atol=0)
    check_gradients(lambda *ts: ops.stack(ts, axis=axis), *xs)


@st.composite
def split_case(draw):
    shape = draw(SHAPES_1D)
    nd = len(shape)
    axis = draw(st.integers(-nd, nd - 1))
    n = shape[axis]
    if draw(st.booleans()):
        sections = draw(st.integers(1, n + 1))  # a piece size; the last piece may be shorter
        cuts = list(range(sections, n, sections))
    else:
        cuts = sorted(draw(st.lists(st.integers(0, n), max_size=3)))
        sections = [b - a for a, b in zip([0] + cuts, cuts + [n])]  # may include empty pieces
    return draw(values(shape)), sections, cuts, axis


@EXAMPLES
@given(case=split_case(), data=st.data())
def test_split(case, data):
    x, sections, cuts, axis = case
    pieces = Tensor(x).split(sections, axis=axis)
    want = np.split(x, cuts, axis=axis)
    assert len(pieces) == len(want)
    for got, ref in zip(pieces, want):
        close(got, ref, rtol=0, atol=0)
    check_gradients(lambda t: t.split(sections, axis=axis), x)
    used = data.draw(st.integers(0, len(want) - 1))  # only one piece used: the others get zeros
    check_gradients(lambda t: ops.split(t, sections, axis)[used] * 2.0, x)


def test_split_with_an_unused_piece_gives_it_zero_gradient():
    x = leaf(np.arange(12.0).reshape(2, 6))
    a, b, c = x.split([1, 3, 2], axis=1)
    (b * b).sum().backward()
    want = np.zeros((2, 6))
    want[:, 1:4] = 2 * x.data[:, 1:4]
    np.testing.assert_array_equal(x.grad, want)


@EXAMPLES
@given(data=st.data())
def test_masked_fill(data):
    shape = data.draw(SHAPES)
    x = data.draw(values(shape))
    mask = data.draw(arrays(broadcastable_shapes(shape), np.bool_))
    close(Tensor(x).masked_fill(mask, -np.inf), np.where(mask, -np.inf, x), rtol=0, atol=0)
    close(ops.masked_fill(Tensor(x), Tensor(mask), 7.0), np.where(mask, 7.0, x), rtol=0, atol=0)
    check_gradients(lambda t: t.masked_fill(mask, -3.0), x)


def test_masked_fill_causal_mask_then_softmax():
    T = 4
    x = np.random.default_rng(1).standard_normal((2, T, T))
    causal = np.triu(np.ones((T, T), bool), k=1)
    att = Tensor(x).masked_fill(causal, -np.inf).softmax(axis=-1).data
    assert np.all(att[:, causal] == 0.0)
    np.testing.assert_allclose(att.sum(-1), 1.0, rtol=1e-14)
    check_gradients(lambda t: t.masked_fill(causal, -np.inf).softmax(axis=-1), x)


@EXAMPLES
@given(data=st.data())
def test_where_broadcast(data):
    sc, sa, sb = data.draw(TRIPLES).input_shapes
    cond = data.draw(arrays(sc, np.bool_))
    a, b = data.draw(values(sa)), data.draw(values(sb))
    close(ops.where(cond, Tensor(a), Tensor(b)), np.where(cond, a, b), rtol=0, atol=0)
    close(tinygrad_lm.where(Tensor(cond), Tensor(a), Tensor(b)), np.where(cond, a, b), rtol=0, atol=0)
    check_gradients(lambda s, t: ops.where(cond, s, t), a, b)
    check_gradients(lambda s: ops.where(cond, s, 0.5), a)
    check_gradients(lambda t: ops.where(cond, -1.0, t), b)


def test_where_needs_a_tensor():
    with pytest.raises(TypeError, match="where: needs at least one tensor"):
        ops.where(np.array([True]), 1.0, 2.0)


# ----------------------------------------------------------------- softmax
def _softmax_ref(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@EXAMPLES
@given(data=st.data())
def test_softmax_any_axis(name, data):
    shape = data.draw(SHAPES_1D)
    x = data.draw(values(shape, -5, 5))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    ref = _softmax_ref(x, axis) if name == "softmax" else np.log(_softmax_ref(x, axis))
    close(getattr(Tensor(x), name)(axis=axis), ref, rtol=1e-12, atol=1e-14)
    close(getattr(ops, name)(Tensor(x), axis), ref, rtol=1e-12, atol=1e-14)
    check_gradients(lambda t: getattr(t, name)(axis=axis), x)


def test_softmax_is_numerically_stable():
    x = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1002.0]])
    with np.errstate(all="raise"):
        s = Tensor(x).softmax(axis=-1).data
        ls = Tensor(x).log_softmax(axis=-1).data
    np.testing.assert_allclose(s[0], _softmax_ref(np.array([0.0, 1.0, 2.0]), -1), rtol=1e-14)
    np.testing.assert_allclose(ls[1], np.log(_softmax_ref(np.array([0.0, -1.0, -2.0]), -1)), rtol=1e-14)
    np.testing.assert_allclose(Tensor([[0.0, 1e4]]).log_softmax().data, [[-1e4, 0.0]])
    check_gradients(lambda t: t.softmax(axis=0), leaf(x / 100))


# ----------------------------------------------------------------- dropout
def test_dropout_keeps_about_1_minus_p_and_scales_by_inverse():
    p = 0.3
    x = Tensor(np.ones((200, 200)))
    y = F.dropout(x, p, rng=np.random.default_rng(123)).data
    kept = y != 0
    assert abs(kept.mean() - (1 - p)) < 0.01
    np.testing.assert_array_equal(y[kept], 1 / (1 - p))
    assert y.mean() == pytest.approx(1.0, abs=0.02)  # inverted dropout keeps the expectation


def test_dropout_gradient_is_mask_times_scale(rng):
    p = 0.5
    xv = rng.standard_normal((6, 7)) + 3.0  # no zeros in x: y != 0 exactly where kept
    x = leaf(xv)
    y = F.dropout(x, p, rng=np.random.default_rng(5))
    gy = rng.standard_normal((6, 7))
    y.backward(gy)
    keep = y.data != 0
    assert 0 < keep.sum() < keep.size
    np.testing.assert_allclose(y.data, xv * keep / (1 - p), rtol=1e-15)
    np.testing.assert_allclose(x.grad, gy * keep / (1 - p), rtol=1e-15)


def test_dropout_gradcheck_with_a_fixed_generator_per_evaluation(rng):
    # a fresh generator with the same seed in every evaluation gives the same mask each time
    check_gradients(lambda t: F.dropout(t, 0.4, rng=np.random.default_rng(9)), leaf(rng.standard_normal((3, 4))))


def test_dropout_eval_mode_and_p_zero_are_identity():
    x = leaf(np.arange(6.0))
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x


def test_dropout_same_seed_same_mask():
    x = Tensor(np.ones((8, 8), np.float32))
    a = F.dropout(x, 0.5, rng=np.random.default_rng(7)).data
    b = F.dropout(x, 0.5, rng=np.random.default_rng(7)).data
    c = F.dropout(x, 0.5, rng=np.random.default_rng(8)).data
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    tinygrad_lm.manual_seed(3)  # the global generator is used when none is passed
    d1, d2 = F.dropout(x, 0.5).data, F.dropout(x, 0.5).data
    tinygrad_lm.manual_seed(3)
    np.testing.assert_array_equal(F.dropout(x, 0.5).data, d1)
    assert not np.array_equal(d1, d2)
    assert d1.dtype == np.float32 and set(np.unique(d1)) <= {0.0, 2.0}


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5])
def test_dropout_rejects_bad_p(p):
    with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\)"):
        F.dropout(Tensor([1.0]), p)


# ----------------------------------------------------------------- compositions
def test_gradcheck_through_a_broadcasting_chain(rng):
    a = rng.standard_normal((3, 1))
    b = rng.standard_normal((4,))
    c = rng.standard_normal(())
    w = rng.standard_normal((2, 1, 4))

    def f(a, b, c, w):
        h = (a * b + c).tanh() / (1 + b ** 2)          # (3, 4)
        h = (h * w - a.mean()).sigmoid()                # (2, 3, 4)
        return (h @ b).sum(axis=0, keepdims=True) + c.exp() - h.var(axis=(0, 2)).gelu()  # (1, 3)

    check_gradients(f, a, b, c, w)


def test_gradcheck_through_an_attention_like_block(rng):
    B, T, C, h = 2, 3, 4, 2
    x = rng.standard_normal((B, T, C))
    w_qkv = rng.standard_normal((C, 3 * C)) * 0.5
    causal = np.triu(np.ones((T, T), bool), k=1)

    def f(x, w):
        q, k, v = (x @ w).split(C, axis=2)                               # 3 x (B, T, C)
        q, k, v = (t.reshape(B, T, h, C // h).transpose(1, 2) for t in (q, k, v))  # (B, h, T, hs)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // h))    # (B, h, T, T)
        att = att.masked_fill(causal, -np.inf).softmax(axis=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)                  # (B, T, C)
        return ops.concat([y, x[:, -1:, :]], axis=1).log_softmax(axis=-1)

    check_gradients(f, x, w_qkv)


# ----------------------------------------------------------------- float32 in, float32 out
class _Spy(Function):
    """Identity that records the dtype of the gradient flowing back into it."""
    seen = []

    def forward(self, x):
        return x

    def backward(self, gy):
        _Spy.seen.append(gy.dtype)
        return gy


_M = np.array([[False, True, False], [True, False, False]])
FLOAT32_OPS = {
    "add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y,
    "div": lambda x, y: x / y, "matmul": lambda x, y: x @ y.T,
    "radd": lambda x, y: 1.5 + x, "rsub": lambda x, y: 2 - x, "rmul": lambda x, y: 0.5 * x,
    "rdiv": lambda x, y: 3.0 / x, "add_scalar": lambda x, y: x + 2, "div_scalar": lambda x, y: x / 3.0,
    "neg": lambda x, y: -x, "pow2": lambda x, y: x ** 2, "pow_half": lambda x, y: x ** 0.5,
    "pow_np": lambda x, y: x ** np.float64(1.5),
    "sum": lambda x, y: x.sum(axis=1), "mean": lambda x, y: x.mean(), "max": lambda x, y: x.max(axis=0),
    "var": lambda x, y: x.var(axis=-1, keepdims=True),
    "exp": lambda x, y: x.exp(), "log": lambda x, y: x.log(), "sqrt": lambda x, y: x.sqrt(),
    "tanh": lambda x, y: x.tanh(), "sigmoid": lambda x, y: x.sigmoid(), "relu": lambda x, y: x.relu(),
    "gelu": lambda x, y: x.gelu(), "reshape": lambda x, y: x.reshape(3, 2), "permute": lambda x, y: x.permute(1, 0),
    "transpose": lambda x, y: x.transpose(0, 1), "getitem": lambda x, y: x[1:, ::2],
    "getitem_int": lambda x, y: x[[0, 0, 1]], "concat": lambda x, y: ops.concat([x, y], axis=1),
    "stack": lambda x, y: ops.stack([x, y]), "split": lambda x, y: x.split([1, 2], axis=1)[1],
    "masked_fill": lambda x, y: x.masked_fill(_M, -np.inf), "where": lambda x, y: ops.where(_M, x, y),
    "where_scalar": lambda x, y: ops.where(_M, x, 0.0),
    "softmax": lambda x, y: x.softmax(axis=0), "log_softmax": lambda x, y: x.log_softmax(),
    "dropout": lambda x, y: F.dropout(x, 0.5, rng=np.random.default_rng(0)),
}


@pytest.mark.parametrize("name", FLOAT32_OPS)
def test_float32_in_float32_out_and_float32_gradients(name):
    x = leaf(np.array([[0.5, 1.0, 1.5], [2.0, 2.5, 3.0]], np.float32))
    y = leaf(np.array([[1.0, 2.0, 0.5], [0.25, 1.0, 1.5]], np.float32))
    _Spy.seen = []
    out = FLOAT32_OPS[name](_Spy()(x), _Spy()(y))
    assert out.dtype == np.float32, out.dtype
    out.backward(np.ones(out.shape, np.float32))
    assert _Spy.seen and all(d == np.float32 for d in _Spy.seen), _Spy.seen  # no float64 inside backward
    for t in (x, y):
        assert t.grad is None or t.grad.dtype == np.float32


# ----------------------------------------------------------------- error messages
@pytest.mark.parametrize("name", ["add", "sub", "mul", "div"])
def test_binary_shape_mismatch_names_op_and_shapes(name):
    op = BINARY[name][0]
    with pytest.raises(ValueError, match=name + r".*\(2, 3\).*\(4,\)"):
        op(Tensor(np.ones((2, 3))), Tensor(np.ones(4)))


def test_shape_errors_name_the_op_and_shapes():
    a = Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"matmul.*\(2, 3\).*\(4, 2\).*not aligned"):
        a @ Tensor(np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"matmul.*batch.*\(2, 2, 3\).*\(3, 3, 2\)"):
        Tensor(np.ones((2, 2, 3))) @ Tensor(np.ones((3, 3, 2)))
    with pytest.raises(ValueError, match=r"matmul.*at least 1 dimension"):
        Tensor(2.0) @ a
    with pytest.raises(ValueError, match=r"concat.*\(2, 3\).*\(3, 4\)"):
        ops.concat([a, Tensor(np.ones((3, 4)))], axis=0)
    with pytest.raises(ValueError, match=r"reshape.*\(2, 3\).*\(4, 2\)"):
        a.reshape(4, 2)
    with pytest.raises(ValueError, match=r"masked_fill.*\(4,\).*\(2, 3\)"):
        a.masked_fill(np.ones(4, bool), 0.0)
    with pytest.raises(ValueError, match=r"masked_fill.*\(2, 2, 3\).*\(2, 3\)"):
        a.masked_fill(np.ones((2, 2, 3), bool), 0.0)
    with pytest.raises(ValueError, match=r"stack.*\(2, 3\).*\(3, 2\)"):
        ops.stack([a, Tensor(np.ones((3, 2)))])
    with pytest.raises(ValueError, match=r"split: sizes \[1, 1\] sum to 2.*\(2, 3\)"):
        a.split([1, 1], axis=1)
    with pytest.raises(ValueError, match=r"where.*\(2,\).*\(3,\).*\(4,\)"):
        ops.where(np.ones(2, bool), Tensor(np.ones(3)), Tensor(np.ones(4)))
    with pytest.raises(ValueError, match=r"permute.*\(0, 0\).*\(2, 3\)"):
        a.permute(0, 0)
    with pytest.raises(ValueError, match="concat: needs at least one tensor"):
        ops.concat([])


def test_failed_forward_leaves_inputs_usable():
    """A failed forward raises before any graph is recorded: the inputs stay usable."""
    x = leaf(np.ones((2, 3)))
    with pytest.raises(ValueError):
        x + Tensor(np.ones(4))
    (x * 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 2.0))
