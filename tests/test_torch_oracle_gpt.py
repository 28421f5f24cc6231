"""The whole GPT against a PyTorch twin with GPT-2's parameter names (skipped without torch).

Our state dict loads into the PyTorch model with strict=True and no renaming, and the two
give the same logits, loss and gradients in float64; the reverse direction loads too.
"""
import numpy as np
import pytest

from oracles import oracle  # tests/oracles.py

pytestmark = pytest.mark.oracle
torch = oracle("torch")
import torch.nn as tnn  # noqa: E402
import torch.nn.functional as tF  # noqa: E402

import tinygrad_lm  # noqa: E402
from tinygrad_lm.models.gpt import GPT, GPTConfig  # noqa: E402


class TorchBlock(tnn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_head = c.n_head
        self.ln_1 = tnn.LayerNorm(c.n_embd, bias=c.bias)
        self.attn = tnn.Module()
        self.attn.c_attn = tnn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.attn.c_proj = tnn.Linear(c.n_embd, c.n_embd, bias=c.bias)
        self.ln_2 = tnn.LayerNorm(c.n_embd, bias=c.bias)
        self.mlp = tnn.Module()
        self.mlp.c_fc = tnn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias)
        self.mlp.c_proj = tnn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.attn.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        y = tF.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
        x = x + self.attn.c_proj(y)
        return x + self.mlp.c_proj(tF.gelu(self.mlp.c_fc(self.ln_2(x)), approximate="tanh"))


class TorchGPT(tnn.Module):
    def __init__(self, c):
        super().__init__()
        self.transformer = tnn.ModuleDict(dict(
            wte=tnn.Embedding(c.vocab_size, c.n_embd), wpe=tnn.Embedding(c.block_size, c.n_embd),
            h=tnn.ModuleList(TorchBlock(c) for _ in range(c.n_layer)), ln_f=tnn.LayerNorm(c.n_embd, bias=c.bias)))
        self.lm_head = tnn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight

    def forward(self, idx, targets):
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(idx.shape[1]))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        return logits, tF.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)


@pytest.mark.parametrize("bias", [True, False])
def test_gpt_matches_pytorch_twin_with_the_same_state_dict(bias):
    cfg = GPTConfig(vocab_size=17, block_size=8, n_layer=2, n_head=2, n_embd=16, bias=bias)
    tinygrad_lm.manual_seed(0)
    ours = GPT(cfg).to(dtype=np.float64)
    theirs = TorchGPT(cfg).double()
    missing, unexpected = theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()},
                                                 strict=True)
    assert not missing and not unexpected
    rng = np.random.default_rng(0)
    idx, tgt = rng.integers(0, 17, (3, 8)), rng.integers(0, 17, (3, 8))
    tgt[0, :2] = -1
    logits, loss = ours(idx, tgt)
    loss.backward()
    t_logits, t_loss = theirs(torch.from_numpy(idx), torch.from_numpy(tgt))
    t_loss.backward()
    np.testing.assert_allclose(logits.data, t_logits.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert loss.item() == pytest.approx(t_loss.item(), rel=1e-12)
    t_grads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, t_grads[name].grad.numpy(), rtol=1e-8, atol=1e-12, err_msg=name)


def test_pytorch_weights_load_into_our_gpt():
    cfg = GPTConfig(vocab_size=11, block_size=4, n_layer=1, n_head=2, n_embd=8)
    torch.manual_seed(0)
    theirs = TorchGPT(cfg).double()
    ours = GPT(cfg).to(dtype=np.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()}, strict=True)
    idx = np.array([[1, 2, 3, 4]])
    np.testing.assert_allclose(ours(idx, idx)[0].data, theirs(torch.from_numpy(idx), torch.from_numpy(idx))[0]
                               .detach().numpy(), rtol=1e-10, atol=1e-12)
