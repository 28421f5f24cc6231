"""scripts/gpu_check.py, the prepared GPU check: it refuses clearly where there is no GPU, and its
measuring code runs end to end on the CPU stand-in for CuPy (`cupy_standin.py`, a test double)
at a tiny config, so that the one GPU run it is written for does not die of a typo."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_lm.engine import backend

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import gpu_check  # noqa: E402


@pytest.mark.skipif(backend.gpu_available, reason="checks what a machine without a GPU sees")
def test_without_a_gpu_the_check_says_so_and_exits():
    run = subprocess.run([sys.executable, "scripts/gpu_check.py"], cwd=REPO, capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO), "PATH": ""}, timeout=120)
    assert run.returncode != 0 and "no usable GPU" in run.stderr


def test_the_checks_rows_come_out_on_the_standin(monkeypatch):
    import cupy_standin

    cupy_standin.install(monkeypatch)
    monkeypatch.delenv("CUPY_TF32", raising=False)  # set_tf32 writes it; restored after the test
    monkeypatch.setattr(cupy_standin, "get_default_memory_pool", lambda: _Pool(), raising=False)
    monkeypatch.setattr(gpu_check, "time_torch", lambda *a: (1.0, 0), raising=True)  # no CUDA PyTorch here
    monkeypatch.setattr(gpu_check, "ROWS", [])
    monkeypatch.setitem(gpu_check.CONFIG, "n_layer", 1)
    for key, value in dict(n_head=2, n_embd=16, block_size=16, batch_size=4, max_iters=20, warmup=5).items():
        monkeypatch.setitem(gpu_check.CONFIG, key, value)
    ids = np.random.default_rng(0).integers(0, 65, 4000)
    gpu_check.speed(ids, 65, 5)
    gpu_check.training(ids, ids[:500], 65, budget=600, tf32=False)
    rows = {what: result for _, what, result in gpu_check.ROWS}
    for path in ("reference", "fast"):
        for tf32 in ("off", "on"):
            assert "ms/iter" in rows[f"ours, {path} path, TF32 {tf32}"]
    assert "max |loss(TF32 on) - loss(off)|" in rows["TF32's accuracy cost (fast path)"]
    assert rows["training, fast path, TF32 off"].startswith("20 iterations")
    assert not any("ERROR" in r for r in rows.values()), rows


class _Pool:
    def free_all_blocks(self):
        pass

    def total_bytes(self):
        return 0
