"""Benchmark the GPT training step and the nanoGPT CPU recipe's quality.

Three measurements (each can be run alone):
  --speed    the step of the default command, `python -m tinygrad_lm train`, with its model and
             settings taken from the code (`TrainConfig()`: GPTConfig's defaults, 4 layers, 4
             heads, 128 wide, block 64, bias, tied weights, learned positions, dropout 0; batch
             12; AdamW with its lr, betas, weight decay on >= 2-D parameters, and gradient
             clipping; float32; the char tokenizer's vocabulary of the built-in corpus), run as
             `train` runs it: the fast path, each batch split over --threads threads (default
             auto, with auto's choice of threads or one slice after another, thread_choice.py),
             BLAS on one thread. Beside it, in one process with the sides' rounds
             alternating: the same with --threads 1, and the same model in PyTorch eager
             (--blas-threads threads, attention written out as softmax(q k^T) v with a causal
             mask, tanh GELU, the same AdamW parameter groups and clipping; SDPA as an extra
             line), and NumPy's float32 GEMM (2048 x 2048 @ 2048 x 2048 at --blas-threads
             threads). Prints median ms/step, the ratio ours / PyTorch (target <= 0.85x), and
             each step's achieved GFLOP/s as a share of the GEMM's (target >= 60%).
             FLOP counted per step (B rows, T positions, N = B T tokens, C wide, L layers, V
             vocabulary): 6 N (12 L C^2 + C V), forward and backward of every matrix product
             with a weight (the four Linear layers of each block, 12 C^2 weights, and the tied
             lm_head, C V: forward 2 N per weight, backward 4 N), plus attention's products,
             12 L B T^2 C (forward q k^T and P v, 2 B T^2 C each, backward four products of the
             same size), counted over the full T x T matrix as the GEMMs compute it. Biases,
             embeddings, layer norms, softmax, GELU, the loss and AdamW count 0 (not GEMMs).
             With --reference also `train --reference` (the textbook path). With --busy, one
             CPU-bound process (`python -c "while True: pass"`) runs beside the warm-up and every
             timed round (the issue's "with the other core busy").
  --quality  char-level Tiny Shakespeare with nanoGPT's CPU recipe (AdamW lr 1e-3, beta2 0.99,
             warmup 100, cosine to 1e-4 over 2000 iters, weight decay 0.1, clip 1.0, dropout 0,
             no bias, learned positions): val loss and bits per byte at the end.
  --bpe      the same recipe with a 1024-token BPE tokenizer: val bits per byte.
With no flag, all three run. `--threads N|auto` is train's --threads (the batch split over N
threads; auto: every core this process may use, at most the batch's rows); `--blas-threads N`
sets BLAS/OpenMP threads for the GEMM measurement and PyTorch (default: the cores of
os.sched_getaffinity), before NumPy/PyTorch load BLAS.

    python scripts/bench_train.py --speed
    python scripts/bench_train.py --speed --busy
    python scripts/bench_train.py --speed --threads 1 --blas-threads 1
    python scripts/bench_train.py --quality --bpe
"""
import argparse
import os
import sys


def threads_arg(text):
    """--threads: "auto" or a positive integer (train's --threads; run/cores.parse's rule, written
    out here because the flags are read before NumPy loads, and importing the package loads it)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer or auto; pass --threads N with N >= 1, "
                                         "or --threads auto")
    return value


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--speed", action="store_true", help="step time against PyTorch")
    p.add_argument("--speed-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--quality", action="store_true", help="char-level recipe to 2000 iters")
    p.add_argument("--bpe", action="store_true", help="the recipe with a 1024-token BPE")
    p.add_argument("--steps", type=int, default=50, help="timed steps per side (speed)")
    p.add_argument("--iters", type=int, default=2000, help="training iterations (quality, bpe)")
    p.add_argument("--threads", type=threads_arg, default="auto",
                   help="train's --threads: split each batch over N CPU threads, or auto (every core this process "
                        "may use, at most the batch's rows; the default)")
    p.add_argument("--blas-threads", type=int, default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else os.cpu_count(), help="BLAS/OpenMP threads of the GEMM measurement and of PyTorch "
                                             "(default: the cores this process may use)")
    p.add_argument("--reference", action="store_true", help="with --speed: also time `train --reference`")
    p.add_argument("--busy", action="store_true", help="with --speed: run one CPU-bound process beside the warm-up "
                                                       "and the timed rounds (the other core busy)")
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
    if args.speed_only:
        args.speed = True
    if not (args.speed or args.quality or args.bpe or args.torch_quality or args.page_faults):
        args.speed = args.quality = args.bpe = True
    if args.blas_threads < 1:
        p.error(f"--blas-threads {args.blas_threads}: pass a positive integer")
    return args


ARGS = parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.blas_threads)

import platform  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import tinygrad_lm  # noqa: E402
from tinygrad_lm.models.gpt import GPT, GPTConfig  # noqa: E402
from tinygrad_lm.optim import AdamW, param_groups  # noqa: E402
from tinygrad_lm import fast  # noqa: E402
from tinygrad_lm.fast.blas import blas_threads  # noqa: E402
from tinygrad_lm.run import cores  # noqa: E402
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
            f"Python {platform.python_version()}, NumPy {np.__version__}, BLAS threads {ARGS.blas_threads}")


def busy_cores(window=1.0):
    """The share of the machine's cores that were busy over `window` seconds (/proc/stat), or None.
    Read before a timed run: other processes' work slows the 2-thread sides most (an OpenMP or
    BLAS barrier waits for its slowest thread), so a busy machine's ratios mislead."""
    def times():
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait
    try:
        total0, idle0 = times()
        time.sleep(window)
        total1, idle1 = times()
    except (OSError, ValueError, IndexError):
        return None
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def load_line(busy_before):
    """What the machine did around the run, with a warning when other processes were busy."""
    before = "unknown" if busy_before is None else f"{100 * busy_before:.0f}%"
    try:
        load = f"{os.getloadavg()[0]:.2f}"
    except OSError:
        load = "unknown"
    noisy = busy_before is not None and busy_before > 0.1
    return (f"load: cores {before} busy in the 1 s before the run, 1-minute load average {load} after it"
            + ("  (other processes were running: the times and ratios are unreliable)" if noisy else ""))


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

    train_cfg, cfg = default_command()  # the default command's model, one thread
    tinygrad_lm.manual_seed(0)
    model = fast.fuse(GPT(cfg))  # the fast path, as train runs it
    opt = AdamW(param_groups(model.named_parameters(), train_cfg.optim.weight_decay), lr=train_cfg.optim.lr,
                betas=(train_cfg.optim.beta1, train_cfg.optim.beta2))
    rng = np.random.default_rng(0)
    x, y = (rng.integers(0, cfg.vocab_size, (BATCH, cfg.block_size)),
            rng.integers(0, cfg.vocab_size, (BATCH, cfg.block_size)))

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

    print(f"\n== page faults per training step (the default command's model on one thread, vocab {cfg.vocab_size}, "
          f"batch {BATCH}, {steps} steps each)")
    print(f"   {machine()}")
    for label in ("default glibc allocator", "after tune_allocator()"):
        if label.startswith("after"):
            fast.tune_allocator()
        faults, sys_ms, ms = measure()
        print(f"   {label:24s} {faults:8.0f} minor faults/step  {sys_ms:5.1f} ms kernel time/step  {ms:6.1f} ms/step")


def default_command():
    """(TrainConfig, GPTConfig) of `python -m tinygrad_lm train` with no flags, read from the code:
    TrainConfig's defaults, the model's vocabulary the tokenizer's that train builds (run/train.py's
    _load_data: `build_tokenizer(cfg.tokenizer, load_corpus(cfg.data))`, the char tokenizer of the
    built-in corpus)."""
    from dataclasses import replace

    from tinygrad_lm.run.data import build_tokenizer, load_corpus
    from tinygrad_lm.run.train import TrainConfig

    cfg = TrainConfig()
    text, name = load_corpus(cfg.data)
    tokenizer = build_tokenizer(cfg.tokenizer, text, cfg.vocab_size, name=name)
    return cfg, replace(cfg.model, vocab_size=tokenizer.vocab_size)


def resolve_threads(threads, train_cfg, cfg):
    """(split, line): `fast.speed_up`'s threads and choose (auto's choice of threads or one slice
    after another) and the start line that `train --threads threads` gets for the model `cfg`,
    from train's own `cores.batch_split`."""
    from dataclasses import replace

    return cores.batch_split(replace(train_cfg, run=replace(train_cfg.run, threads=threads)), None, GPT(cfg))


def step_flop(cfg, B):
    """FLOP of one training step's matrix products (the module docstring says what is counted)."""
    T, C, L, V = cfg.block_size, cfg.n_embd, cfg.n_layer, cfg.vocab_size
    N = B * T
    weights = 12 * L * C * C + C * V  # per block: c_attn 3C^2, attn c_proj C^2, c_fc 4C^2, mlp c_proj 4C^2; lm_head
    return 6 * N * weights + 12 * L * B * T * T * C


def init_gpt2(model, n_layer):
    """GPT-2's initialisation on the PyTorch twin (as models/gpt.py does ours)."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("proj.weight"):
                torch.nn.init.normal_(p, 0.0, 0.02 / (2 * n_layer) ** 0.5)
            elif p.dim() >= 2:
                torch.nn.init.normal_(p, 0.0, 0.02)
            elif name.endswith("bias"):
                torch.nn.init.zeros_(p)


def gemm_step(n=2048):
    """One float32 n x n @ n x n product (BLAS at the threads of the block that calls it): a step
    function for the rounds, and its FLOP."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)

    def step(i):
        with blas_threads(ARGS.blas_threads):
            np.matmul(a, b, out=out)
    return step, 2 * n ** 3


def run_rounds(sides, times):
    """Time each side's step (name -> step function) in alternating rounds, into `times`;
    returns (rounds, timed steps per side per round)."""
    rounds = max(5, min(10, ARGS.steps // 5))
    per_round = max(1, ARGS.steps // rounds)
    for r in range(rounds):  # alternate the sides so background load hits all of them
        for name, fn in sides.items():
            # untimed steps for 0.3 s first: the previous side's idle worker threads stop
            # spinning (OpenBLAS busy-waits ~0.1 s after its last call) and this side's threads
            # and caches are warm, so each side is timed in its steady state, as in training
            t0, i = time.perf_counter(), 0
            while time.perf_counter() - t0 < 0.3:
                fn(i)
                i += 1
            for i in range(per_round):
                t = time.perf_counter()
                fn(i)
                times[name].append(time.perf_counter() - t)
    return rounds, per_round


def bench_speed():
    busy_before = busy_cores()  # before this process loads the cores
    fast.tune_allocator()  # what train() does; it applies to PyTorch in this process too
    train_cfg, cfg = default_command()
    opt_cfg = train_cfg.optim
    B, dtype = opt_cfg.batch_size, np.dtype(train_cfg.dtype)
    split, how = resolve_threads(ARGS.threads, train_cfg, cfg)
    threads = split["threads"]
    rng = np.random.default_rng(0)
    batches = [(rng.integers(0, cfg.vocab_size, (B, cfg.block_size)),
                rng.integers(0, cfg.vocab_size, (B, cfg.block_size))) for _ in range(8)]

    def setup(path, threads=1, choose=False):
        """A fresh default model and AdamW on `path` ("reference" or "fast"), as train() builds them."""
        tinygrad_lm.manual_seed(train_cfg.run.seed)
        model = GPT(cfg).to(dtype=dtype)
        opt = AdamW(param_groups(model.named_parameters(), opt_cfg.weight_decay), lr=opt_cfg.lr,
                    betas=(opt_cfg.beta1, opt_cfg.beta2))
        if path == "fast":
            model, opt = fast.speed_up(model, opt, threads, choose)
        return model, opt

    def step_of(model, opt):
        def step(i):  # what train()'s loop runs, BLAS on one thread as the command line sets it (fast/blas.py)
            x, y = batches[i % len(batches)]
            with blas_threads(1):
                train_step(model, opt, micro_batches({"idx": x, "targets": y}, 1), grad_clip=opt_cfg.grad_clip)
        return step

    default = f"ours, the default command (threads {threads})"
    default_model, default_opt = setup("fast", **split)
    sides = {default: step_of(default_model, default_opt)}
    if threads != 1:
        sides["ours, --threads 1"] = step_of(*setup("fast", 1))
    if ARGS.reference:
        sides["ours, --reference"] = step_of(*setup("reference"))
    n_params = GPT(cfg).num_params()
    torch_version = None
    try:
        import torch

        torch.set_num_threads(ARGS.blas_threads)
        torch.manual_seed(0)
        tmodel = torch_gpt(cfg)
        init_gpt2(tmodel, cfg.n_layer)
        params = [p for p in tmodel.parameters() if p.requires_grad]  # a tied weight once, as param_groups
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": opt_cfg.weight_decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        topt = torch.optim.AdamW(groups, lr=opt_cfg.lr, betas=(opt_cfg.beta1, opt_cfg.beta2))
        tb = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]

        def torch_step(i, sdpa):
            x, y = tb[i % len(tb)]
            topt.zero_grad(set_to_none=True)
            loss = tmodel(x, y, sdpa)
            loss.backward()
            loss.item()
            torch.nn.utils.clip_grad_norm_(tmodel.parameters(), opt_cfg.grad_clip)
            topt.step()

        sides["PyTorch eager, attention written out"] = lambda i: torch_step(i, False)
        sides["PyTorch eager, SDPA"] = lambda i: torch_step(i, True)
        torch_version = torch.__version__
    except ImportError:
        pass
    gemm, gemm_flop = gemm_step()
    gemm_name = f"NumPy float32 GEMM 2048^2 @ 2048^2, {ARGS.blas_threads} BLAS threads"
    sides[gemm_name] = gemm

    times = {name: [] for name in sides}
    # --busy: the load starts before the warm-up, as a run starts on a busy machine (auto's first
    # trial of threads against one slice after another meets it)
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if ARGS.busy else None
    try:
        for fn in sides.values():  # warm up
            for i in range(5):
                fn(i)
        rounds, per_round = run_rounds(sides, times)
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()
    # peak memory of our arrays during one step (NumPy reports its allocations to tracemalloc,
    # from every thread)
    peaks = {}
    for name in [n for n in sides if n.startswith("ours")]:
        tracemalloc.start()
        sides[name](0)
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()

    flop = step_flop(cfg, B)
    gemm_rate = gemm_flop / float(np.median(times.pop(gemm_name)))
    print(f"\n== the default command's training step (`python -m tinygrad_lm train`, settings from TrainConfig()): "
          f"{cfg.n_layer} layers, {cfg.n_head} heads, {cfg.n_embd} wide, block {cfg.block_size}, bias {cfg.bias}, "
          f"tied {cfg.tie_weights}, {cfg.pos_encoding} positions, dropout {cfg.dropout}, batch {B}, {dtype}, vocab "
          f"{cfg.vocab_size} ({train_cfg.tokenizer}, {train_cfg.data or 'built-in corpus'}), {n_params:,} params; AdamW "
          f"lr {opt_cfg.lr} betas ({opt_cfg.beta1}, {opt_cfg.beta2}) weight decay {opt_cfg.weight_decay} on >= 2-D "
          f"params, clip {opt_cfg.grad_clip}")
    print(f"   {machine()}" + (f", PyTorch {torch_version} ({ARGS.blas_threads} threads)" if torch_version
                              else ", PyTorch not installed"))
    print(f"   {load_line(busy_before)}" + ("; one CPU-bound process ran beside the warm-up and "
                                                 "the timed rounds (--busy)" if ARGS.busy else ""))
    chooser = getattr(default_model, "choice", None)  # DataParallel's ThreadChoice under auto
    print(f"   ours: the fast path, batch split as `train` splits it ({how}), BLAS on 1 thread (as `train`); "
          f"{rounds} alternating rounds of 0.3 s untimed + {per_round} timed steps per side"
          + (f"; auto's chooser at the end: {chooser!r}" if chooser else ""))
    print(f"   FLOP per step: 6 N (12 L C^2 + C V) + 12 L B T^2 C = {flop / 1e9:.3f} GFLOP (N = {B * cfg.block_size} "
          f"tokens; weight and attention matrix products, forward and backward; nothing else counted)")
    print(f"   {gemm_name}: median {gemm_rate / 1e9:.1f} GFLOP/s")
    print(f"   {'side':40s} {'median ms':>10s} {'p25-p75 ms':>15s} {'best':>7s} {'tokens/s':>9s} {'GFLOP/s':>8s} "
          f"{'of GEMM':>8s}")
    med = {}
    for name, ts in times.items():
        ts = np.array(ts) * 1e3
        med[name] = float(np.median(ts))
        rate = flop / (med[name] / 1e3)
        print(f"   {name:40s} {med[name]:10.2f} {np.percentile(ts, 25):7.2f}-{np.percentile(ts, 75):<7.2f} "
              f"{ts.min():7.2f} {B * cfg.block_size / med[name] * 1e3:9,.0f} {rate / 1e9:8.1f} "
              f"{100 * rate / gemm_rate:7.1f}%")
    print(f"   our step's share of GEMM GFLOP/s: {100 * flop / (med[default] / 1e3) / gemm_rate:.1f}% (target >= 60%)"
          + (f"; PyTorch's (written-out attention): "
             f"{100 * flop / (med['PyTorch eager, attention written out'] / 1e3) / gemm_rate:.1f}%"
             if torch_version else ""))
    if torch_version:
        manual, sdpa = med["PyTorch eager, attention written out"], med["PyTorch eager, SDPA"]
        for name in [n for n in med if n.startswith("ours")]:
            print(f"   ratio {name} / PyTorch eager (written-out attention): {med[name] / manual:.3f}x"
                  + (" (target <= 0.85x)" if name == default else "") + f"; / SDPA: {med[name] / sdpa:.3f}x")
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
                    out_dir=f"{ARGS.out_dir}/{tokenizer}", sample_tokens=0, seed=ARGS.seed,
                    threads=ARGS.threads, **RECIPE)
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
    print(f"   {machine().rsplit(', BLAS threads', 1)[0]}")
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
