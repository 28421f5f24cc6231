"""The pre-LN Transformer block of GPT-2: x + attn(ln_1(x)), then x + mlp(ln_2(x)).

Normalising before each sublayer (not after, as in the original Transformer) keeps the
residual stream an identity path, which is what makes deep stacks train without warm tricks.
Leaves out: post-LN and parallel (GPT-J style) blocks.
"""
from .attention import CausalSelfAttention
from .layers import MLP, LayerNorm
from .module import Module


class Block(Module):
    def __init__(self, n_embd, n_head, dropout=0.0, bias=True):
        super().__init__()
        self.ln_1 = LayerNorm(n_embd, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = LayerNorm(n_embd, bias=bias)
        self.mlp = MLP(n_embd, dropout=dropout, bias=bias)

    def forward(self, x, attention_mask=None, kv_cache=None):
        x = x + self.attn(self.ln_1(x), attention_mask, kv_cache)
        return x + self.mlp(self.ln_2(x))
