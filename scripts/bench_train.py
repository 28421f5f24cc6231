"""Benchmark the GPT training step and the nanoGPT CPU recipe's quality.

Three measurements (each can be run alone):
  --speed    step time of the recipe's model (4 layers, 4 heads, 128 wide, block 64, batch 12,
             float32) for tinygrad_lm's reference path (`train --reference`), its fast path
             (`fast.fuse`, as `train` runs it), and with --threads > 1 the fast path with each
             batch split across threads (`train --threads N`), all through the same loop lines,
             and for the same model in PyTorch eager (when torch is importable), interleaved in
             one process; tokens/s, peak memory and the ratios to PyTorch.
  --quality  char-level Tiny Shakespeare with nanoGPT's CPU recipe (AdamW lr 1e-3, beta2 0.99,
             warmup 100, cosine to 1e-4 over 2000 iters, weight decay 0.1, clip 1.0, dropout 0,
             no bias, learned positions): val loss and bits per byte at the end.
  --bpe      the same recipe with a 1024-token BPE tokenizer: val bits per byte.
With no flag, all three run. BLAS (and PyTorch) threads: --blas-threads, default 2 (set before NumPy/PyTorch load
BLAS); --threads is train's batch split for the split side (N, or auto: every core).

    python scripts/bench_train.py --speed --threads 2
    python scripts/bench_train.py --quality --bpe
"""
import argparse
import os
import sys


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--speed", action="store_true", help="step time against PyTorch")
    p.add_argument("--speed-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--quality", action="store_true", help="char-level recipe to 2000 iters")
    p.add_argument("--bpe", action="store_true", help="the recipe with a 1024-token BPE")
    p.add_argument("--steps", type=int, default=50, help="timed steps per side (speed)")
    p.add_argument("--iters", type=int, default=2000, help="training iterations (quality, bpe)")
    p.add_argument("--threads", default="auto", help="train's --threads for the split side: N, or auto (every core)")
    p.add_argument("--blas-threads", type=int, default=2, help="BLAS/OpenMP threads, and PyTorch's")
    p.add_argument("--data", default=None, help="text file (default: ../shared/data/tinyshakespeare.txt)")
    p.add_argument("--out-dir", default="runs/bench", help="run folders for the quality runs")
    p.add_argument("--page-faults", action="store_true",
                   help="minor page faults and kernel time per step, before and after tune_allocator()")
    p.add_argument("--seed", type=int, default=1337, help="seed of the quality runs (init, batches)")
    p.add_argument("--torch-quality", action="store_true",
                   help="train the PyTorch twin with the same recipe and batches (char-level) for comparison")
    p.add_argument("--against", metavar="DIR", default=None,
                   help="with --speed: also time the default command's step (`python -m tinygrad_lm train`, "
                        "the fast path) of this checkout against the checkout in DIR (e.g. an older commit "
                        "in a `git worktree`), alternating fresh processes")
    p.add_argument("--rounds", type=int, default=3, help="with --against: alternating rounds per side")
    p.add_argument("--torch-gelu", default="tanh", choices=["tanh", "none"],
                   help="GELU of the PyTorch twin: tanh approximation (ours, GPT-2) or exact erf (nanoGPT)")
    args = p.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    args.threads = cores if args.threads == "auto" else int(args.threads)  # train's auto, without its row cap
    if args.speed_only:
        args.speed = True
    if not (args.speed or args.quality or args.bpe or args.torch_quality or args.page_faults):
        args.speed = args.quality = args.bpe = True
    return args


ARGS = parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.blas_threads)

import platform  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import tinygrad_lm  # noqa: E402
from tinygrad_lm.models.gpt import GPT, GPTConfig  # noqa: E402
from tinygrad_lm.optim import AdamW, param_groups  # noqa: E402
from tinygrad_lm import fast  # noqa: E402
from tinygrad_lm.fast.blas import blas_threads, set_blas_threads  # noqa: E402
from tinygrad_lm.metrics import bits_per_byte  # noqa: E402
from tinygrad_lm.run.data import micro_batches  # noqa: E402
from tinygrad_lm.run.loop import train_step  # noqa: E402

RECIPE = dict(block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False)
BATCH = 12
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, NumPy {np.__version__}, threads {ARGS.blas_threads}")


# ---------------------------------------------------------------- PyTorch twin of the model
def torch_gpt(cfg):
    import torch
    import torch.nn as tnn
    import torch.nn.functional as tF

    class Block(tnn.Module):
        def __init__(self):
            super().__init__()
            C = cfg.n_embd
            self.ln_1 = tnn.LayerNorm(C, bias=cfg.bias)
            self.c_attn = tnn.Linear(C, 3 * C, bias=cfg.bias)
            self.c_proj = tnn.Linear(C, C, bias=cfg.bias)
            self.ln_2 = tnn.LayerNorm(C, bias=cfg.bias)
            self.c_fc = tnn.Linear(C, 4 * C, bias=cfg.bias)
            self.mlp_proj = tnn.Linear(4 * C, C, bias=cfg.bias)

        def forward(self, x, sdpa):
            B, T, C = x.shape
            nh = cfg.n_head
            q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
            q = q.view(B, T, nh, C // nh).transpose(1, 2)  # (B, nh, T, hs)
            k = k.view(B, T, nh, C // nh).transpose(1, 2)  # (B, nh, T, hs)
            v = v.view(B, T, nh, C // nh).transpose(1, 2)  # (B, nh, T, hs)
            if sdpa:
                y = tF.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                att = (q @ k.transpose(-2, -1)) * (1.0 / (C // nh) ** 0.5)  # (B, nh, T, T)
                mask = torch.ones(T, T, dtype=torch.bool).tril()
                y = att.masked_fill(~mask, float("-inf")).softmax(-1) @ v
            x = x + self.c_proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)
            return x + self.mlp_proj(tF.gelu(self.c_fc(self.ln_2(x)), approximate=ARGS.torch_gelu))

    class Model(tnn.Module):
        def __init__(self):
            super().__init__()
            self.wte = tnn.Embedding(cfg.vocab_size, cfg.n_embd)
            self.wpe = tnn.Embedding(cfg.block_size, cfg.n_embd)
            self.h = tnn.ModuleList(Block() for _ in range(cfg.n_layer))
            self.ln_f = tnn.LayerNorm(cfg.n_embd, bias=cfg.bias)
            self.lm_head = tnn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
            self.lm_head.weight = self.wte.weight

        def forward(self, idx, targets, sdpa=True):
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
            for b in self.h:
                x = b(x, sdpa)
            logits = self.lm_head(self.ln_f(x))
            return tF.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    return Model()


def bench_page_faults(steps=20):
    """Minor page faults and kernel (sys) time per training step, default glibc allocator first,
    then after tune_allocator() in the same process (mallopt cannot be undone)."""
    import resource

    cfg = GPTConfig(vocab_size=65, **RECIPE)
    tinygrad_lm.manual_seed(0)
    model = fast.fuse(GPT(cfg))  # the fast path, as train runs it
    opt = AdamW(param_groups(model.named_parameters(), 0.1), lr=1e-3, betas=(0.9, 0.99))
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 65, (BATCH, cfg.block_size)), rng.integers(0, 65, (BATCH, cfg.block_size))

    def measure():
        for _ in range(3):  # warm up
            _, loss = model(x, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for _ in range(steps):
            _, loss = model(x, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        return ((r1.ru_minflt - r0.ru_minflt) / steps, (r1.ru_stime - r0.ru_stime) / steps * 1e3,
                (t1 - t0) / steps * 1e3)

    print(f"\n== page faults per training step (recipe model, batch {BATCH}, {steps} steps each)")
    print(f"   {machine()}")
    for label in ("default glibc allocator", "after tune_allocator()"):
        if label.startswith("after"):
            fast.tune_allocator()
        faults, sys_ms, ms = measure()
        print(f"   {label:24s} {faults:8.0f} minor faults/step  {sys_ms:5.1f} ms kernel time/step  {ms:6.1f} ms/step")


def bench_speed(vocab_size=65):
    fast.tune_allocator()  # what train() does; it applies to PyTorch in this process too
    cfg = GPTConfig(vocab_size=vocab_size, **RECIPE)
    rng = np.random.default_rng(0)
    batches = [(rng.integers(0, vocab_size, (BATCH, cfg.block_size)),
                rng.integers(0, vocab_size, (BATCH, cfg.block_size))) for _ in range(8)]

    def setup(path, threads=1):
        """A fresh recipe model and AdamW on `path` ("reference" or "fast"), as train() builds them."""
        tinygrad_lm.manual_seed(0)
        model = GPT(cfg)
        opt = AdamW(param_groups(model.named_parameters(), 0.1), lr=1e-3, betas=(0.9, 0.99))
        if path == "fast":
            model, opt = fast.speed_up(model, opt, threads)
            set_blas_threads(ARGS.blas_threads)  # speed_up(threads > 1) limits BLAS process-wide; each side sets its own
        return model, opt

    def step_of(model, opt):
        def step(i):  # what train()'s loop runs: one train_step on the batch
            x, y = batches[i % len(batches)]
            train_step(model, opt, micro_batches({"idx": x, "targets": y}, 1), grad_clip=1.0)
        return step

    def with_one_blas_thread(step):  # as train --threads N runs: BLAS single-threaded throughout
        def run(i):
            with blas_threads(1):
                step(i)
        return run

    sides = {"tinygrad_lm reference": step_of(*setup("reference")), "tinygrad_lm fast": step_of(*setup("fast"))}
    n_params = GPT(cfg).num_params()
    if ARGS.threads > 1:
        sides[f"tinygrad_lm fast {ARGS.threads} threads"] = with_one_blas_thread(step_of(*setup("fast", ARGS.threads)))
    try:
        import torch

        torch.set_num_threads(ARGS.blas_threads)
        tmodel = torch_gpt(cfg)
        topt = torch.optim.AdamW(tmodel.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
        tb = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]

        def torch_step(i, sdpa):
            x, y = tb[i % len(tb)]
            loss = tmodel(x, y, sdpa)
            topt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(tmodel.parameters(), 1.0)
            topt.step()

        sides["pytorch (SDPA)"] = lambda i: torch_step(i, True)
        sides["pytorch (manual attn)"] = lambda i: torch_step(i, False)
        torch_version = torch.__version__
    except ImportError:
        torch_version = None

    for fn in sides.values():  # warm up
        for i in range(5):
            fn(i)
    times = {name: [] for name in sides}
    rounds = 5
    per_round = max(1, ARGS.steps // rounds)
    for r in range(rounds):  # interleave the sides so background load hits all of them
        for name, fn in sides.items():
            # untimed steps for 0.3 s first: the previous side's idle worker threads stop
            # spinning (OpenBLAS busy-waits ~0.1 s after its last call) and this side's threads
            # and caches are warm, so each side is timed in its steady state, as in training
            t0, i = time.perf_counter(), 0
            while time.perf_counter() - t0 < 0.3:
                fn(i)
                i += 1
            t = time.perf_counter()
            for i in range(per_round):
                fn(i)
            times[name].append((time.perf_counter() - t) / per_round)
    # peak memory of our arrays during one step (NumPy reports its allocations to tracemalloc,
    # from every thread)
    peaks = {}
    for name in [n for n in sides if n.startswith("tinygrad_lm")]:
        tracemalloc.start()
        sides[name](0)
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()

    print(f"\n== training step: {cfg.n_layer} layers, {cfg.n_head} heads, {cfg.n_embd} wide, block {cfg.block_size}, "
          f"batch {BATCH}, float32, vocab {vocab_size}, {n_params:,} params")
    print(f"   {machine()}" + (f", PyTorch {torch_version}" if torch_version else ", PyTorch not installed"))
    ref = None
    print("   (reference = train --reference; fast = train; fast N threads = train --threads N)")
    for name, ts in times.items():
        best, med = min(ts), float(np.median(ts))
        tok_s = BATCH * cfg.block_size / med
        if name == "pytorch (SDPA)":
            ref = med
        print(f"   {name:30s} median {med * 1e3:7.2f} ms/step (best {best * 1e3:6.2f})  {tok_s:9,.0f} tokens/s")
    if ref:
        manual = float(np.median(times["pytorch (manual attn)"]))
        for name in [n for n in times if n.startswith("tinygrad_lm")]:
            ours_med = float(np.median(times[name]))
            print(f"   ratio {name} / pytorch: {ours_med / ref:.2f}x against SDPA, {ours_med / manual:.2f}x against "
                  f"manual attention; {ours_med / min(ref, manual):.2f}x against the faster"
                  + (" (target for the fast path: <= 1.3x)" if "fast" in name else ""))
    for name, peak in peaks.items():
        print(f"   peak NumPy memory during one step, {name}: {peak / 2**20:.1f} MiB")


def full_val_loss(model, ids, block_size, batch=64):
    """Mean next-token loss over the whole validation split, in non-overlapping windows.

    The same quantity that estimate_loss samples with 20 random windows (every window starts
    with an empty context), but over every validation token, so its noise is negligible.
    """
    from tinygrad_lm import no_grad

    n = (len(ids) - 1) // block_size
    starts = np.arange(n) * block_size
    total, count = 0.0, 0
    model.eval()
    with no_grad():
        for i in range(0, n, batch):
            offsets = starts[i:i + batch, None] + np.arange(block_size + 1)  # (b, T + 1)
            window = np.asarray(ids[offsets], dtype=np.int64)
            _, loss = model(window[:, :-1], window[:, 1:])
            total += loss.item() * window.shape[0] * block_size
            count += window.shape[0] * block_size
    return total / count


def bench_quality(tokenizer):
    from tinygrad_lm.run.config import from_flat
    from tinygrad_lm.run.train import TrainConfig, train

    data = Path(ARGS.data) if ARGS.data else DEFAULT_DATA
    if not data.exists():
        print(f"skipping the {tokenizer} quality run: {data} not found (pass --data)")
        return
    cfg = from_flat(TrainConfig, data=str(data), tokenizer=tokenizer, vocab_size=1024, max_iters=ARGS.iters,
                    lr=1e-3, min_lr=1e-4, warmup_iters=100, weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0,
                    batch_size=BATCH, eval_interval=250, eval_iters=20, log_interval=100,
                    out_dir=f"{ARGS.out_dir}/{tokenizer}", sample_tokens=0, seed=ARGS.seed, **RECIPE)
    t = time.perf_counter()
    result = train(cfg)
    minutes = (time.perf_counter() - t) / 60
    import json

    evals = [json.loads(line) for line in open(Path(cfg.run.out_dir) / "log.jsonl") if "val_loss" in line]
    last = evals[-1]
    from tinygrad_lm.run.data import TokenData, load_corpus

    text, _ = load_corpus(str(data))
    val_ids = TokenData(text, result["tokenizer"]).val
    full = full_val_loss(result["model"], val_ids, cfg.model.block_size)
    print(f"\n== quality, {tokenizer}-level, {data.name}, {ARGS.iters} iters, nanoGPT CPU recipe, seed {ARGS.seed} "
          f"({minutes:.1f} min)")
    print(f"   {machine()}")
    print(f"   final: train loss {last['train_loss']:.4f}, val loss {last['val_loss']:.4f}, "
          f"val bits/byte {last['val_bpb']:.4f}, best val loss {result['best_val']:.4f}")
    print(f"   whole validation split ({len(val_ids):,} tokens, non-overlapping windows): val loss {full:.4f}, "
          f"bits/byte {bits_per_byte(full, 1, result['bytes_per_token']):.4f}")
    print(f"   mean ms/step {1e3 * result['seconds'] / max(len(result['losses']), 1):.1f} (incl. evaluation)")


def bench_torch_quality():
    """nanoGPT's CPU recipe on the PyTorch twin, same batches and schedule as ours (char-level)."""
    import torch

    from tinygrad_lm.run.data import TokenData, get_batch, load_corpus
    from tinygrad_lm.optim import cosine_warmup_lr
    from tinygrad_lm.tokenizer import CharTokenizer

    data_path = Path(ARGS.data) if ARGS.data else DEFAULT_DATA
    text, _ = load_corpus(str(data_path))
    tok = CharTokenizer(text)
    data = TokenData(text, tok)
    torch.manual_seed(ARGS.seed)
    torch.set_num_threads(ARGS.blas_threads)
    cfg = GPTConfig(vocab_size=tok.vocab_size, **RECIPE)
    model = torch_gpt(cfg)
    for name, p in model.named_parameters():  # GPT-2 / nanoGPT initialisation
        if name.endswith("proj.weight"):
            torch.nn.init.normal_(p, 0.0, 0.02 / (2 * cfg.n_layer) ** 0.5)
        elif p.dim() >= 2:
            torch.nn.init.normal_(p, 0.0, 0.02)
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.99))
    rng = np.random.default_rng(ARGS.seed)
    t = time.perf_counter()
    for it in range(ARGS.iters):
        for g in opt.param_groups:
            g["lr"] = cosine_warmup_lr(it, 1e-3, min(100, ARGS.iters), ARGS.iters, 1e-4)
        x, y = get_batch(data.train, BATCH, cfg.block_size, rng)
        loss = model(torch.from_numpy(x), torch.from_numpy(y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    minutes = (time.perf_counter() - t) / 60
    n = (len(data.val) - 1) // cfg.block_size
    total = 0.0
    model.eval()
    with torch.no_grad():
        for i in range(0, n, 64):
            offsets = (np.arange(i, min(i + 64, n)) * cfg.block_size)[:, None] + np.arange(cfg.block_size + 1)
            w = torch.from_numpy(np.asarray(data.val[offsets], dtype=np.int64))  # (b, T + 1)
            total += model(w[:, :-1], w[:, 1:]).item() * w.shape[0]
    val = total / n
    print(f"\n== quality, PyTorch twin (GELU {ARGS.torch_gelu}), char-level, {data_path.name}, {ARGS.iters} iters, "
          f"seed {ARGS.seed} ({minutes:.1f} min)")
    print(f"   whole validation split, non-overlapping windows: val loss {val:.4f}, "
          f"bits/byte {bits_per_byte(val, 1, data.bytes_per_token):.4f}")


def bench_against(other):
    """ms/step of the default command's training step (`python -m tinygrad_lm train`: the fast
    path, its model and batch, BLAS on one thread) for this checkout and the one in `other`,
    each run in fresh processes that alternate (this, other, this, other, ...), so both see
    the same machine. Each process trains 260 steps without evaluating; its log.jsonl gives
    ms/step over each 20 steps, and the first 60 steps (warm-up) are left out."""
    import json
    import subprocess
    import tempfile

    here = Path(__file__).resolve().parents[1]
    sides = {"this checkout": here, "against": Path(other).resolve()}
    for name, root in sides.items():
        if not (root / "tinygrad_lm" / "__init__.py").is_file():
            raise SystemExit(f"--against {other}: {root} holds no tinygrad_lm package")
    times = {name: [] for name in sides}
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                           "MKL_NUM_THREADS")}  # the command's own default
    for _ in range(ARGS.rounds):
        for name, root in sides.items():
            with tempfile.TemporaryDirectory() as out:
                cmd = [sys.executable, "-m", "tinygrad_lm", "train", "--max-iters", "260", "--eval-interval", "100000",
                       "--log-interval", "20", "--sample-tokens", "0", "--quiet", "--out-dir", out]
                subprocess.run(cmd, cwd=root, env={**env, "PYTHONPATH": str(root)}, check=True)
                records = [json.loads(line) for line in open(Path(out) / "log.jsonl")]
                times[name] += [r["ms_per_step"] for r in records if "ms_per_step" in r and r["step"] > 60]
    print(f"\n== the default command's step, alternating processes ({ARGS.rounds} rounds, 260 steps each)")
    print(f"   {machine().rsplit(', threads', 1)[0]}")
    for name, root in sides.items():
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or "?"
        ts = times[name]
        print(f"   {name:14s} {commit:9s} median {np.median(ts):6.2f} ms/step (best {min(ts):6.2f}, "
              f"{len(ts)} windows of 20 steps)  {root}")
    ratio = np.median(times["this checkout"]) / np.median(times["against"])
    print(f"   ratio this / against: {ratio:.3f}")


if __name__ == "__main__":
    print("command: python " + " ".join(sys.argv))
    if ARGS.against:
        if not ARGS.speed:
            raise SystemExit("--against goes with --speed")
        bench_against(ARGS.against)
    if ARGS.page_faults:
        bench_page_faults()
    if ARGS.speed:
        bench_speed()
    if ARGS.quality:
        bench_quality("char")
    if ARGS.bpe:
        bench_quality("bpe")
    if ARGS.torch_quality:
        bench_torch_quality()
