"""Generation speed: tokens/s with and without the key/value cache, on the GPT-2 small config.

The model is GPT-2 small's shape (124M parameters: 12 layers, 12 heads, 768 wide, 50257
tokens, 1024 positions) with random weights, on the CPU, batch 1, greedy. Each side generates
the same --new-tokens after the same random --prompt-len prompt, and tokens/s counts the new
tokens over the whole call (the prompt's prefill included):

  ours, cached, reference    GPT.generate (the KVCache of nn/kv_cache.py), textbook layers
  ours, cached, fast         the same after fast.fuse(model)
  ours, uncached, reference  GPT.generate(use_cache=False): the whole context every token
  ours, uncached, fast
  transformers, cached       GPT2LMHeadModel.generate on the same weights (when transformers,
  transformers, uncached     torch and safetensors are importable), same process, same threads

It also prints, from a fresh subprocess holding one model, the resident memory once the model
is built and the peak after a cached generation, and whether every side produced the same tokens.
Timing: time.perf_counter around each generate call, after one short warm-up call per side;
the best of --repeats runs per side, the sides run in turn within each repeat.

Usage:
    python scripts/bench_generate.py
    python scripts/bench_generate.py --threads 2 --prompt-len 16 --new-tokens 48 --repeats 2
"""
import argparse
import os
import sys


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP/torch threads (set before NumPy loads)")
    p.add_argument("--prompt-len", type=int, default=16, help="prompt tokens (random ids)")
    p.add_argument("--new-tokens", type=int, default=48, help="tokens to generate per call")
    p.add_argument("--repeats", type=int, default=2, help="timed calls per side (the best is reported)")
    p.add_argument("--no-hf", action="store_true", help="skip transformers even when it is installed")
    p.add_argument("--memory", action="store_true", help="only build one model, generate with the cache and print "
                   "the process's memory (the main run does this in a subprocess)")
    return p.parse_args()


ARGS = parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)  # before NumPy loads its BLAS

import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tinygrad_lm import fast, manual_seed  # noqa: E402
from tinygrad_lm.models.gpt import GPT, GPTConfig  # noqa: E402

GPT2_SMALL = dict(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)


def rss_mib(field="VmRSS"):
    """The process's resident memory (VmRSS) or its peak (VmHWM) in MiB, from /proc (Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def timed(call):
    t0 = time.perf_counter()
    out = call()
    return time.perf_counter() - t0, out


def memory():
    """One model in a fresh process: resident memory once built, and the peak after generating."""
    manual_seed(0)
    prompt = np.random.default_rng(0).integers(0, GPT2_SMALL["vocab_size"], size=(1, ARGS.prompt_len))
    base = rss_mib()
    model = GPT(GPTConfig(**GPT2_SMALL)).eval()
    built = rss_mib()
    model.generate(prompt, ARGS.new_tokens, temperature=0)
    print(f"memory, one model in a fresh process: {built:.0f} MiB resident once built ({built - base:.0f} MiB "
          f"for the model; its float32 parameters are {model.num_params() * 4 / 2**20:.0f} MiB), peak "
          f"{rss_mib('VmHWM'):.0f} MiB (initialisation and {ARGS.new_tokens} cached tokens included)")


def main():
    import subprocess

    args = [sys.executable, os.path.abspath(__file__), "--memory", "--threads", str(ARGS.threads),
            "--prompt-len", str(ARGS.prompt_len), "--new-tokens", str(ARGS.new_tokens)]
    print(f"GPT-2 small config, random weights, float32, batch 1, greedy, prompt {ARGS.prompt_len} + "
          f"{ARGS.new_tokens} new tokens, {ARGS.threads} threads; load average at start "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip())
    manual_seed(0)
    prompt = np.random.default_rng(0).integers(0, GPT2_SMALL["vocab_size"], size=(1, ARGS.prompt_len))
    ours = GPT(GPTConfig(**GPT2_SMALL)).eval()
    fused = fast.fuse(GPT(GPTConfig(**GPT2_SMALL)).eval())
    fused.load_state_dict(ours.state_dict())
    n = ARGS.new_tokens
    sides = {
        "ours, cached, reference": lambda k: ours.generate(prompt, k, temperature=0),
        "ours, cached, fast": lambda k: fused.generate(prompt, k, temperature=0),
        "ours, uncached, reference": lambda k: ours.generate(prompt, k, temperature=0, use_cache=False),
        "ours, uncached, fast": lambda k: fused.generate(prompt, k, temperature=0, use_cache=False),
    }
    for side in sides.values():
        side(2)  # warm-up: first-call allocations, BLAS thread start
    hf_note = add_transformers(sides, ours, prompt)
    best, tokens = {}, {}
    for _ in range(ARGS.repeats):
        for name, side in sides.items():
            seconds, out = timed(lambda: side(n))
            best[name] = min(best.get(name, float("inf")), seconds)
            tokens[name] = np.asarray(out)[0, -n:]
    print(f"{'side':<28} {'seconds':>8} {'tokens/s':>9}  same tokens as ours, cached, reference")
    reference = tokens["ours, cached, reference"]
    for name, seconds in best.items():
        same = "yes" if np.array_equal(tokens[name], reference) else "NO"
        print(f"{name:<28} {seconds:8.2f} {n / seconds:9.1f}  {same}")
    print(f"the cache speeds up our generation {best['ours, uncached, reference'] / best['ours, cached, reference']:.1f}x "
          f"(reference), {best['ours, uncached, fast'] / best['ours, cached, fast']:.1f}x (fast)")
    print(hf_note)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 minutes; other "
          "processes' load slows the sides that run during it)")


def add_transformers(sides, ours, prompt):
    """Add transformers' generate on our weights to `sides`; returns a note when it cannot."""
    if ARGS.no_hf:
        return "transformers: skipped (--no-hf)"
    try:
        import torch
        import transformers
        import safetensors  # noqa: F401
    except ImportError as e:
        return f"transformers: not measured ({e.name} is not installed)"
    torch.set_num_threads(ARGS.threads)
    folder = tempfile.mkdtemp(prefix="bench_generate_")
    ours.save_pretrained(folder)
    hf = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
    ids = torch.tensor(prompt)

    def hf_generate(k, use_cache):
        with torch.no_grad():
            return hf.generate(ids, max_new_tokens=k, min_new_tokens=k, do_sample=False, use_cache=use_cache,
                               pad_token_id=0).numpy()

    sides["transformers, cached"] = lambda k: hf_generate(k, True)
    sides["transformers, uncached"] = lambda k: hf_generate(k, False)
    hf_generate(2, True), hf_generate(2, False)  # warm-up
    return f"transformers {transformers.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads)"


if __name__ == "__main__":
    memory() if ARGS.memory else main()
