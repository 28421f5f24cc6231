"""The one prepared GPU check (issue #13): everything the CuPy path promises, measured on one
NVIDIA GPU in at most 8 minutes, printed as one summary table.

    PYTHONPATH=. python scripts/gpu_check.py [--data shared/data/tinyshakespeare.txt] [--budget 480]

Needs CuPy (cupy-cuda13x), NumPy, regex, pytest and hypothesis; PyTorch for the comparison rows.
Installs nothing and reaches no network: it runs from the checkout.

  (a) the test suite's CuPy half on the real GPU: every test whose id says `cupy` (not the
      stand-in), and tests/test_cuda_kernels.py (the kernel sources compile, each kernel
      matches its NumPy twin); a subprocess, so a crash there cannot end the check.
  (b) each fused kernel (fast/cuda/) against its NumPy twin: the fast layer on the GPU in
      float32 against the same layer's NumPy code on the CPU in float64 (max relative error of
      output and gradients), and its time against the same layer with the kernels switched off
      (TINYGRAD_LM_CUDA_KERNELS=0: the CuPy array code).
  (c) nanoGPT's shakespeare-char GPU config (6 layers, 6 heads, 384 wide, block 256, batch 64,
      dropout 0.2, AdamW lr 1e-3 beta2 0.99, wd 0.1, clip 1.0): ms per training iteration for
      ours (reference path and fast path, TF32 off and on) and PyTorch eager (manual attention
      and SDPA, TF32 off and on), all in this process, with the peak GPU memory of each; and
      TF32's accuracy cost: the largest loss difference between the TF32-off and -on runs of
      the fast path over the same steps from the same weights and batches.
  (d) as many training iterations of that config as fit in the time left (fast path, TF32 off
      unless --tf32), warmup 100 then cosine to 1e-4 over 5,000 iterations, with the val loss
      every 250 iterations and the best one.

Peak memory: PyTorch's `max_memory_allocated`; ours the bytes CuPy's memory pool holds at the
end of the run (the pool keeps freed blocks, so it holds the run's peak), the pool emptied
before each run.
Leaves out: multi-GPU runs and anything the issue does not ask for.
"""
import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CONFIG = dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64, dropout=0.2, lr=1e-3, min_lr=1e-4,
              beta2=0.99, weight_decay=0.1, warmup=100, max_iters=5000, grad_clip=1.0)
CORPUS_CANDIDATES = ("shared/data/tinyshakespeare.txt", "../shared/data/tinyshakespeare.txt",
                     "/work/shared/data/tinyshakespeare.txt", "data/shakespeare_char/input.txt")
ROWS = []  # (section, what, result) for the summary table
START = time.time()


def row(section, what, result):
    ROWS.append((section, what, result))
    print(f"[{time.time() - START:6.1f}s] {section} | {what} | {result}", flush=True)


def left(budget):
    return budget - (time.time() - START)


# ---------------------------------------------------------------- data
def load_corpus(path):
    """(train ids, val ids, vocab size) of the char-level corpus, 90/10 as nanoGPT; None if absent."""
    candidates = [path] if path else [REPO / c for c in CORPUS_CANDIDATES]
    for c in candidates:
        if c and Path(c).is_file():
            text = Path(c).read_text(encoding="utf-8")
            chars = sorted(set(text))
            lookup = {ch: i for i, ch in enumerate(chars)}
            ids = np.array([lookup[ch] for ch in text], dtype=np.int64)
            n = int(0.9 * len(ids))
            return ids[:n], ids[n:], len(chars), str(c)
    return None


def batch(ids, rng, B, T):
    starts = rng.integers(0, len(ids) - T - 1, B)
    x = np.stack([ids[s:s + T] for s in starts])  # (B, T)
    y = np.stack([ids[s + 1:s + T + 1] for s in starts])  # (B, T)
    return x, y


# ---------------------------------------------------------------- (a) the suite's CuPy half
def suite(budget):
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests",
           "-k", "(cupy and not standin) or test_cuda_kernels"]
    try:
        run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=max(30, budget),
                             env={**os.environ, "PYTHONPATH": str(REPO)})
        tail = [line for line in run.stdout.splitlines() if line.strip()][-1:]
        failed = [line for line in run.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
        row("a", "pytest CuPy half + test_cuda_kernels", (tail[0] if tail else f"rc {run.returncode}"))
        for line in failed[:15]:
            row("a", "  failure", line[:150])
    except subprocess.TimeoutExpired as e:  # say how far it got: pytest prints one character a test
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        marks = "".join(line for line in out.splitlines() if set(line.split(" [")[0]) <= set(".FEsx"))
        row("a", "pytest CuPy half", f"TIMED OUT after {budget:.0f}s: {marks.count('.')} passed, "
                                     f"{marks.count('F') + marks.count('E')} failed, {marks.count('s')} skipped so far")


# ---------------------------------------------------------------- (b) kernels against twins
def kernels():
    from tinygrad_lm import Tensor, fast
    from tinygrad_lm.engine import backend
    from tinygrad_lm.fast import functional as FAST
    from tinygrad_lm.optim import AdamW

    cp = backend.cupy
    r = np.random.default_rng(0)
    B, T, C, nh, V = 16, 256, 384, 6, 65
    targets = r.integers(0, V, (B, T))
    cases = {
        "layernorm": (lambda x, w, b: FAST.layer_norm(x, w, b), [(B, T, C), (C,), (C,)]),
        "gelu": (FAST.gelu, [(B, T, 4 * C)]),
        "cross_entropy": (lambda z: FAST.cross_entropy(z, targets), [(B, T, V)]),
        "attention": (lambda qkv: FAST.packed_self_attention(qkv, nh), [(B, T, 3 * C)]),
    }
    for name, (fn, shapes) in cases.items():
        try:
            arrays = [r.standard_normal(s) for s in shapes]
            gpu = [Tensor(a.astype(np.float32), device="cuda", requires_grad=True) for a in arrays]
            cpu = [Tensor(a, requires_grad=True) for a in arrays]
            out_g, out_c = fn(*gpu), fn(*cpu)
            w = r.standard_normal(out_c.shape)
            out_g.backward(Tensor(w.astype(np.float32), device="cuda"))
            out_c.backward(Tensor(w))
            errs = [_rel(out_g.numpy(), out_c.numpy())] + [_rel(backend.to_device(g.grad, "cpu"), c.grad)
                                                          for g, c in zip(gpu, cpu)]
            t_kernel, t_array = (_time_layer(fn, gpu, cp, kernels_on) for kernels_on in (True, False))
            row("b", f"{name} (fwd+bwd)", f"max rel err {max(errs):.1e} | kernel {t_kernel:.3f} ms, "
                                          f"CuPy array code {t_array:.3f} ms ({t_array / t_kernel:.1f}x)")
        except Exception as e:  # noqa: BLE001  (one bad kernel must not hide the others' rows)
            row("b", name, f"ERROR {type(e).__name__}: {str(e)[:200]}")
    try:  # AdamW: one multi-tensor launch against the per-parameter update, on GPT-sized tensors
        shapes = [(1152, 384), (384, 384), (1536, 384), (384, 1536), (384,), (1152,)] * 6
        ws = [r.standard_normal(s).astype(np.float32) for s in shapes]
        gs = [r.standard_normal(s).astype(np.float32) for s in shapes]
        out = {}
        for mode in ("kernel", "array", "cpu"):
            os.environ["TINYGRAD_LM_CUDA_KERNELS"] = "0" if mode == "array" else "1"
            device = "cpu" if mode == "cpu" else "cuda"
            ps = [Tensor(a, device=device, requires_grad=True) for a in ws]
            for p, g in zip(ps, gs):
                p.grad = backend.to_device(g, device)
            opt = fast.fuse(AdamW(ps, lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1))
            opt.step()
            if device == "cuda":
                cp.cuda.Device().synchronize()
                t0 = time.perf_counter()
                for _ in range(20):
                    opt.step()
                cp.cuda.Device().synchronize()
                out[mode + "_ms"] = (time.perf_counter() - t0) / 20 * 1e3
            else:
                for _ in range(20):
                    opt.step()
            out[mode] = [p.numpy() for p in ps]
        os.environ.pop("TINYGRAD_LM_CUDA_KERNELS", None)
        err = max(_rel(a, b) for a, b in zip(out["kernel"], out["cpu"]))
        row("b", f"adamw multi-tensor ({len(shapes)} tensors, 21 steps)",
            f"max rel err {err:.1e} | kernel {out['kernel_ms']:.3f} ms, CuPy array code {out['array_ms']:.3f} ms "
            f"({out['array_ms'] / out['kernel_ms']:.1f}x)")
    except Exception as e:  # noqa: BLE001
        os.environ.pop("TINYGRAD_LM_CUDA_KERNELS", None)
        row("b", "adamw", f"ERROR {type(e).__name__}: {str(e)[:200]}")


def _rel(got, want):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))


def _time_layer(fn, inputs, cp, kernels_on, reps=20):
    from tinygrad_lm import Tensor

    os.environ["TINYGRAD_LM_CUDA_KERNELS"] = "1" if kernels_on else "0"
    try:
        def once():
            for t in inputs:
                t.grad = None
            out = fn(*inputs)
            out.backward(Tensor(cp.ones(out.shape, dtype=cp.float32)))
        once()
        cp.cuda.Device().synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            once()
        cp.cuda.Device().synchronize()
        return (time.perf_counter() - t0) / reps * 1e3
    finally:
        os.environ.pop("TINYGRAD_LM_CUDA_KERNELS", None)


# ---------------------------------------------------------------- (c) ms/iter, ours and PyTorch
def ours_step_fn(vocab, fused, tf32, seed=0):
    """A training step of our GPT at CONFIG on the GPU: returns step(x, y, lr) -> loss (float)."""
    import tinygrad_lm
    from tinygrad_lm.engine import backend
    from tinygrad_lm import fast
    from tinygrad_lm.fast.cuda.tf32 import set_tf32
    from tinygrad_lm.models.gpt import GPT, GPTConfig
    from tinygrad_lm.optim import AdamW, clip_grad_norm_, param_groups

    set_tf32(tf32)
    tinygrad_lm.manual_seed(seed)
    cfg = GPTConfig(vocab_size=vocab, block_size=CONFIG["block_size"], n_layer=CONFIG["n_layer"],
                    n_head=CONFIG["n_head"], n_embd=CONFIG["n_embd"], dropout=CONFIG["dropout"])
    model = GPT(cfg).to(device="cuda")
    opt = AdamW(param_groups(model.named_parameters(), CONFIG["weight_decay"]), lr=CONFIG["lr"],
                betas=(0.9, CONFIG["beta2"]))
    if fused:
        model, opt = fast.speed_up(model, opt)

    def step(x, y, lr):
        for g in opt.param_groups:
            g["lr"] = lr
        _, loss = model(backend.to_device(x, "cuda"), backend.to_device(y, "cuda"))
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), CONFIG["grad_clip"])
        opt.step()
        return loss

    return model, step


def time_ours(vocab, fused, tf32, batches, warmup=3):
    from tinygrad_lm.engine import backend

    cp = backend.cupy
    pool = cp.get_default_memory_pool()
    pool.free_all_blocks()
    _, step = ours_step_fn(vocab, fused, tf32)
    losses = []
    for i, (x, y) in enumerate(batches):
        if i == warmup:
            cp.cuda.Device().synchronize()
            t0 = time.perf_counter()
        losses.append(step(x, y, CONFIG["lr"]).item())  # the loop's one read-back, as train.py's log
    cp.cuda.Device().synchronize()
    ms = (time.perf_counter() - t0) / (len(batches) - warmup) * 1e3
    return ms, pool.total_bytes(), losses


def torch_gpt(vocab, sdpa):
    """nanoGPT's model, written out (eager PyTorch), with manual or SDPA attention."""
    import torch
    from torch import nn
    from torch.nn import functional as TF

    C, nh, T, p = CONFIG["n_embd"], CONFIG["n_head"], CONFIG["block_size"], CONFIG["dropout"]

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
            self.c_attn, self.c_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
            self.fc, self.proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
            self.drop = nn.Dropout(p)
            self.register_buffer("mask", torch.tril(torch.ones(T, T, dtype=torch.bool)))

        def attend(self, x):
            B, T_, _ = x.shape
            q, k, v = self.c_attn(x).split(C, dim=2)
            q, k, v = (a.view(B, T_, nh, C // nh).transpose(1, 2) for a in (q, k, v))  # (B, nh, T, hs)
            if sdpa:
                y = TF.scaled_dot_product_attention(q, k, v, dropout_p=p if self.training else 0.0, is_causal=True)
            else:
                att = (q @ k.transpose(-2, -1)) / math.sqrt(C // nh)  # (B, nh, T, T)
                att = TF.softmax(att.masked_fill(~self.mask[:T_, :T_], float("-inf")), dim=-1)
                y = self.drop(att) @ v
            return self.drop(self.c_proj(y.transpose(1, 2).reshape(B, T_, C)))  # (B, T, C)

        def forward(self, x):
            x = x + self.attend(self.ln_1(x))
            return x + self.drop(self.proj(TF.gelu(self.fc(self.ln_2(x)), approximate="tanh")))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(vocab, C), nn.Embedding(T, C)
            self.h = nn.ModuleList(Block() for _ in range(CONFIG["n_layer"]))
            self.ln_f, self.drop = nn.LayerNorm(C), nn.Dropout(p)
            self.lm_head = nn.Linear(C, vocab, bias=False)
            self.lm_head.weight = self.wte.weight

        def forward(self, idx, targets):
            x = self.drop(self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device)))
            for block in self.h:
                x = block(x)
            logits = self.lm_head(self.ln_f(x))
            return TF.cross_entropy(logits.view(-1, vocab), targets.view(-1))

    return GPT()


def time_torch(vocab, sdpa, tf32, batches, warmup=3):
    import torch

    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.manual_seed(0)
    model = torch_gpt(vocab, sdpa).cuda()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": CONFIG["weight_decay"]},
                             {"params": rest, "weight_decay": 0.0}], lr=CONFIG["lr"], betas=(0.9, CONFIG["beta2"]))
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    for i, (x, y) in enumerate(batches):
        if i == warmup:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        loss = model(torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CONFIG["grad_clip"])
        opt.step()
        loss.item()
    torch.cuda.synchronize()
    ms = (time.perf_counter() - t0) / (len(batches) - warmup) * 1e3
    peak = torch.cuda.max_memory_allocated()
    del model, opt
    torch.cuda.empty_cache()
    return ms, peak


def speed(train_ids, vocab, iters):
    rng = np.random.default_rng(1)
    batches = [batch(train_ids, rng, CONFIG["batch_size"], CONFIG["block_size"]) for _ in range(iters)]
    tf32_losses = {}
    for fused in (False, True):
        for tf32 in (False, True):
            what = f"ours, {'fast' if fused else 'reference'} path, TF32 {'on' if tf32 else 'off'}"
            try:
                ms, peak, losses = time_ours(vocab, fused, tf32, batches)
                row("c", what, f"{ms:7.2f} ms/iter | peak {peak / 2**30:.2f} GiB")
                if fused:
                    tf32_losses[tf32] = losses
            except Exception as e:  # noqa: BLE001
                row("c", what, f"ERROR {type(e).__name__}: {str(e)[:200]}")
    from tinygrad_lm.fast.cuda.tf32 import set_tf32

    set_tf32(False)
    if len(tf32_losses) == 2:
        diff = max(abs(a - b) for a, b in zip(tf32_losses[False], tf32_losses[True]))
        row("c", "TF32's accuracy cost (fast path)", f"max |loss(TF32 on) - loss(off)| over {iters} steps: {diff:.2e}")
    try:
        import torch  # noqa: F401
    except ImportError:
        row("c", "PyTorch", "not installed: no comparison rows")
        return
    for sdpa in (False, True):
        for tf32 in (False, True):
            what = f"PyTorch eager, {'SDPA' if sdpa else 'manual'} attention, TF32 {'on' if tf32 else 'off'}"
            try:
                ms, peak = time_torch(vocab, sdpa, tf32, batches)
                row("c", what, f"{ms:7.2f} ms/iter | peak {peak / 2**30:.2f} GiB")
            except Exception as e:  # noqa: BLE001
                row("c", what, f"ERROR {type(e).__name__}: {str(e)[:200]}")


# ---------------------------------------------------------------- (d) training to the deadline
def training(train_ids, val_ids, vocab, budget, tf32):
    from tinygrad_lm.engine import backend
    from tinygrad_lm.optim.schedule import cosine_warmup_lr
    from tinygrad_lm.engine.tensor import no_grad

    model, step = ours_step_fn(vocab, True, tf32)
    rng, val_rng = np.random.default_rng(2), np.random.default_rng(3)
    B, T = CONFIG["batch_size"], CONFIG["block_size"]

    def val_loss(n):
        model.eval()
        with no_grad():
            total = sum(model(backend.to_device(x, "cuda"), backend.to_device(y, "cuda"))[1].item()
                        for x, y in (batch(val_ids, val_rng, B, T) for _ in range(n)))
        model.train()
        return total / n

    best, it, t0, history = float("inf"), 0, time.time(), []
    while it < CONFIG["max_iters"] and left(budget) > 25:
        lr = cosine_warmup_lr(it, CONFIG["lr"], CONFIG["warmup"], CONFIG["max_iters"], CONFIG["min_lr"])
        x, y = batch(train_ids, rng, B, T)
        loss = step(x, y, lr)
        it += 1
        if it % 250 == 0:
            v = val_loss(20)
            best = min(best, v)
            history.append((it, loss.item(), v))
            print(f"    iter {it}: train {loss.item():.4f} val {v:.4f} ({(time.time() - t0) / it * 1e3:.1f} ms/iter "
                  "with evals)", flush=True)
    v = val_loss(50)
    best = min(best, v)
    row("d", f"training, fast path, TF32 {'on' if tf32 else 'off'}",
        f"{it} iterations in {time.time() - t0:.0f}s | final val loss {v:.4f} (50 batches) | best {best:.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="tinyshakespeare.txt (default: looked for under shared/data and data/)")
    parser.add_argument("--budget", type=float, default=470, help="seconds for the whole check (default 470)")
    parser.add_argument("--suite-seconds", type=float, default=150, help="time allowed to part (a)")
    parser.add_argument("--timing-iters", type=int, default=13, help="iterations per (c) row, 3 of them warm-up")
    parser.add_argument("--tf32", action="store_true", help="train (d) with TF32 matmuls")
    parser.add_argument("--skip-suite", action="store_true", help="leave out (a)")
    args = parser.parse_args()

    from tinygrad_lm.engine import backend

    if not backend.gpu_available:
        sys.exit("gpu_check: no usable GPU (CuPy missing or no device); this check is for a GPU machine")
    cp = backend.cupy
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.get_device_id())
    row("-", "device", f"{props['name'].decode()} | CuPy {cp.__version__} | NumPy {np.__version__}")
    if not args.skip_suite:
        suite(min(args.suite_seconds, left(args.budget) - 200))
    kernels()
    corpus = load_corpus(args.data)
    if corpus is None:
        row("c", "corpus", "tinyshakespeare.txt not found (--data): timing on random tokens, no (d)")
        train_ids, val_ids, vocab = np.random.default_rng(0).integers(0, 65, 1_000_000), None, 65
    else:
        train_ids, val_ids, vocab, where = corpus
        row("c", "corpus", f"{where}: {len(train_ids):,} train / {len(val_ids):,} val chars, vocab {vocab}")
    speed(train_ids, vocab, args.timing_iters)
    if val_ids is not None:
        training(train_ids, val_ids, vocab, args.budget, args.tf32)
    print("\n" + "=" * 100)
    print(f"gpu_check summary ({time.time() - START:.0f}s)")
    width = max(len(w) for _, w, _ in ROWS)
    for section, what, result in ROWS:
        print(f"({section}) {what.ljust(width)}  {result}")


if __name__ == "__main__":
    main()
