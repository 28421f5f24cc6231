"""Pretraining: one plain Python loop, `train(config)`, that a reader can follow top to bottom.

It follows nanoGPT's train.py. Each step of the loop:

    lr = learning_rate(step)              linear warmup, then cosine decay
    batch = batches(...)                  B random windows x and the same windows shifted by one, y
    loss = train_step(model, ...)         run/loop.py, shared with fine-tuning:
        logits, loss = model(**batch)         forward, model(x, y): mean cross-entropy of the next tokens
        loss.backward()                       backward: every parameter's .grad
        clip_grad_norm_(...)                  scale the gradients to a global norm of at most grad_clip
        optimizer.step()                      AdamW, weight decay on matrices only
    NaN stop, progress line, Ctrl-C       around the step, never inside it

Gradient accumulation (`--grad-accum K`, nanoGPT's gradient_accumulation_steps): the step draws
K*B windows, runs forward and backward on K micro-batches of B rows in turn, each loss weighted
by its share of the targets (1/K), and `.grad` adds them up: the update of one K*B batch in the
memory of a B batch. K=1 is the plain step above, bit for bit.

Every `eval_interval` steps: average train and validation loss over `eval_iters` batches, report
perplexity and bits per byte (so char-level and BPE runs compare), write a checkpoint, and
keep the best-validation one beside it. A progress line shows step, loss, lr, tokens/s and
ETA; every logged step also goes to `log.jsonl` in the run folder.

The same lines run in both configurations. By default the loop first hands the model and
the optimizer to `fast.speed_up` (tinygrad_lm/fast/: fused kernels, and each batch split over
every core this process may run on: `--threads auto`, resolved and printed by cores.py, or
`--threads N`); with `--reference` it runs the textbook layers of nn/ unchanged, on one thread.
Both reach the same loss within float32 noise, and their checkpoints are interchangeable.
What this loop shares with fine-tuning (schedule, logging, checkpoints, Ctrl-C, the NaN stop)
is in loop.py; the flat flags of the nested config in config.py.

Data: `--data FILE` (UTF-8 text, tokenized once and cached) or the built-in corpus, with a char
or BPE tokenizer trained on it, or `--tokenizer-file` (one saved by `tokenize --save`); or
`--tokens FILE`, a token file written by `tokenize --encode-to`, with the `--tokenizer-file`
that wrote it. The checkpoint records the data file's SHA-256, so `--resume --data NEW_PATH`
accepts the same content moved elsewhere and refuses different content.

Masked-language-model pretraining: `--objective mlm` trains a BERT encoder (bert.py) of the
same size flags instead of the GPT (`--objective clm`, the default). The loop is the same; the
objective decides three things before it starts (`_model`, `_batches`): the tokenizer gains
[CLS] [SEP] [MASK] [PAD], the model is `BertForMaskedLM`, and each batch is [CLS] window [SEP]
sequences with 15% of the positions picked and corrupted (mlm.py); evaluations add the
masked-token accuracy.

Fine-tuning GPT-2: `--init-from FOLDER` starts from a Hugging Face GPT-2 folder instead of
random weights (`GPT.from_pretrained`), with its tokenizer and size; `--block-size` crops its
context (the first rows of `wpe`, as nanoGPT's crop_block_size) and `--dropout` applies.

Reproducibility: `--resume` continues bit-for-bit, because the checkpoint holds the model,
the optimizer state, the step, and the random state (the batch stream; init's generator and the
dropout masks' seed and next site, engine/rng.py). A checkpoint from before the keyed masks
resumes only without dropout (run/random_state.py says why).
Safety (loop.py): Ctrl-C, SIGTERM or SIGHUP stops the run between two steps and saves a
checkpoint that resumes exactly (exit status 130, 143 or 129); a closed stdout (`| head`) stops
the printing, not the run; a NaN or infinite loss stops the run with a message naming the step
and leaves the last good checkpoint untouched; a run folder is locked while a run writes it
(a second run into it is refused, naming the first one's PID), and one that holds a run
already is refused unless `--resume` (continue it) or `--overwrite` (start over).
`--resume` takes the saved run's settings; of the flags given with it, only those that cannot
change what was computed so far (more --max-iters, evaluation and logging cadence, where and
how it runs) apply, and any other that differs is refused by name.
Several processes: `mpiexec -n N python -m tinygrad_lm train --dist mpi` runs this loop on N
ranks (distributed.py); each takes its rows of every batch, and one line after `loss.backward()`
sums their gradients.
Config files: `--config run.toml` (config.py); the start prints the settings that differ from
the defaults, and every checkpoint holds the whole config (`train_config`).
Diagnostics: `--diagnostics` also logs, at every logged step, each parameter's gradient norm and
update/data ratio and each block's output statistics (diagnostics.py); it is set up in `_start`
(a wrapped optimizer step and forward hooks), so the loop's lines stay the same.
Leaves out: mixed precision.
"""
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from . import config, cores, mlm
from .diagnostics import diagnostics_for
from .. import checkpoint, distributed, fast
from ..engine import rng
from ..engine.backend import check_device, to_device
from ..metrics import bits_per_byte, perplexity
from .config import OptimConfig, RunConfig
from .data import TokenData, build_tokenizer, file_sha256, get_batch, load_corpus, micro_batches
from .loop import Run, TrainingStopped, claim_folder, learning_rate, resuming, train_step
from .random_state import restore_random_state
from ..models.gpt import GPT, GPTConfig
from ..optim import AdamW, param_groups
from ..engine.tensor import no_grad
from ..tokenizer import load_tokenizer, tokenizer_from_dict
from ..version import newer_writer


@dataclass
class TrainConfig:
    NOT_FLAGS = (("model", "vocab_size"),)  # not a flag: the model's vocabulary is the tokenizer's

    # data
    data: str = None  # path of a UTF-8 text file; None = the built-in corpus
    tokenizer: str = "char"  # "char" or "bpe"
    vocab_size: int = 1024  # BPE only: the size to train the tokenizer to (char-level takes the corpus's characters)
    tokenizer_file: str = None  # a tokenizer saved by `tokenize --save`, used instead of training one
    tokens: str = None  # a token file written by `tokenize --encode-to` (needs tokenizer_file), instead of data
    init_from: str = None  # a Hugging Face GPT-2 folder to fine-tune: its size, weights and tokenizer
    objective: str = "clm"  # "clm": a GPT predicts the next token; "mlm": a BERT encoder predicts masked tokens
    # the model, the optimisation, and how the run is carried out
    model: GPTConfig = field(default_factory=GPTConfig)  # its vocab_size is set from the tokenizer
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    # pretraining's own
    eval_iters: int = 20  # batches per split in each evaluation
    dtype: str = "float32"
    sample_tokens: int = 200  # printed by `python -m tinygrad_lm train` at the end

    def __post_init__(self):
        config.check_paths(self, "data", "tokenizer_file", "tokens", "init_from")  # str or Path, stored as str
        config._check_positive(self, "eval_iters", "vocab_size")
        if self.tokenizer not in ("char", "bpe"):
            raise ValueError(f"tokenizer must be 'char' or 'bpe', got {self.tokenizer!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64' (the parameters' floating type), got "
                             f"{self.dtype!r}")
        if not config._is_int(self.sample_tokens) or self.sample_tokens < 0:
            raise ValueError(f"sample_tokens must be 0 (no sample) or a positive integer, got {self.sample_tokens!r}")
        if self.tokens is not None and self.tokenizer_file is None:
            raise ValueError(f"--tokens {self.tokens} needs the tokenizer that wrote it: add --tokenizer-file "
                             "(the file `tokenize --save` wrote with --encode-to)")
        if self.tokens is not None and self.data is not None:
            raise ValueError(f"--tokens {self.tokens} and --data {self.data} are two sources of training data; "
                             "give one of them")
        if self.init_from is not None and (self.tokens or self.tokenizer_file):
            raise ValueError(f"--init-from {self.init_from} brings its own tokenizer; drop --tokenizer-file/--tokens")
        mlm.check_objective(self)  # --objective and what it cannot run with

    @classmethod
    def from_dict(cls, values, where="train_config"):
        """A TrainConfig from `asdict(cfg)` (what checkpoints store)."""
        return config.from_dict(cls, values, where)


def next_token_batch(ids, batch_size, block_size, rng):
    """The GPT's batch as the model's keyword arguments: B windows and the next token of each position."""
    x, y = get_batch(ids, batch_size, block_size, rng)  # (B, T), (B, T)
    return {"idx": x, "targets": y}


def _batches(cfg, tokenizer):
    """The objective's batch function `(ids, B, T, rng) -> the model's keyword arguments`."""
    if cfg.objective == "mlm":  # [CLS] window [SEP], 15% of the positions picked and corrupted
        return mlm.MLMCollator(tokenizer).get_batch
    return next_token_batch


@no_grad()
def estimate_loss(model, data, cfg, step, batches=next_token_batch):
    """Mean loss over `eval_iters` batches of each split, in eval mode (nanoGPT's estimate_loss);
    with masked-language-model batches also the masked-token accuracy ("train_acc", "val_acc").

    The batches depend on (seed, step, split) only, so evaluating leaves the training batches alone.
    """
    model.eval()
    out = {}
    for split, ids in (("train", data.train), ("val", data.val)):
        batch_rng = np.random.default_rng([cfg.run.seed, step, split == "val"])
        losses, right, picked = [], 0, 0
        for _ in range(cfg.eval_iters):
            batch = batches(ids, cfg.optim.batch_size, cfg.model.block_size, batch_rng)
            logits, loss = model(**{k: to_device(v, cfg.run.device) for k, v in batch.items()})
            losses.append(float(loss.item()))
            if "labels" in batch:  # masked LM: count the picked positions predicted right
                r, n = mlm.masked_accuracy(logits, batch["labels"])
                right, picked = right + r, picked + n
        out[split] = float(np.mean(losses))
        if picked:
            out[f"{split}_acc"] = right / picked
    model.train()
    return out


def _evaluate(model, data, cfg, step, state, run, batches=next_token_batch):
    """Evaluate, log, checkpoint (best.npz when the val loss improved); returns the record."""
    losses = estimate_loss(model, data, cfg, step, batches)
    val = losses["val"]
    record = {"step": step, "train_loss": losses["train"], "val_loss": val, "val_ppl": perplexity(val)}
    if cfg.objective == "mlm":  # the loss is over masked tokens only: bits per byte of the text do not apply
        record.update(train_acc=losses["train_acc"], val_acc=losses["val_acc"])
        message = (f"step {step}: train loss {losses['train']:.4f}, val loss {val:.4f}, masked-token accuracy "
                   f"train {record['train_acc']:.4f} val {record['val_acc']:.4f}")
    else:
        record["val_bpb"] = bits_per_byte(val, tokens=1, bytes=data.bytes_per_token)  # a corpus-wide ratio
        message = (f"step {step}: train loss {losses['train']:.4f}, val loss {val:.4f}, "
                   f"val ppl {record['val_ppl']:.2f}, val bits/byte {record['val_bpb']:.3f}")
    improved = val < state["best_val"]
    if improved:
        state["best_val"] = val
    run.evaluated(record, improved, message)
    return record


def _save(path, model, optimizer, cfg, tokenizer, step, best_val, batch_rng, data_sha256=None, evaluated_step=None):
    meta = {"objective": cfg.objective, "model_config": model.config.to_dict(), "train_config": asdict(cfg),
            "tokenizer": tokenizer.to_dict(), "step": step, "best_val": best_val, "evaluated_step": evaluated_step,
            "rng": rng.get_state(), "batch_rng": batch_rng.bit_generator.state, "data_sha256": data_sha256}
    checkpoint.save(path, model.state_dict(), optimizer.state_dict(), meta)


def _setup(cfg, resume, given=None):
    """Model, optimizer, data, tokenizer and training state: fresh, or from out_dir/ckpt.npz."""
    ckpt_path = Path(cfg.run.out_dir) / "ckpt.npz"
    check_device(cfg.run.device)
    if cfg.run.device == "cuda":  # float32 matmuls: exact float32 unless --tf32 (fast/cuda/tf32.py)
        from ..fast.cuda.tf32 import set_tf32

        set_tf32(cfg.run.tf32)
    notes, tokenizer = [], None
    if resume:
        meta, model_state, optim_state = checkpoint.load(ckpt_path)
        if meta.get("kind") == "sequence-classifier":  # --out-dir names a finetune run's folder
            raise ValueError(f"{ckpt_path} is a fine-tuned classifier's checkpoint (written by `finetune`): "
                             f"continue that run with `finetune --resume --out-dir {cfg.run.out_dir}`, or choose "
                             "another --out-dir")
        # a resumed run continues the saved run: only where and how it runs, and when it stops, may change
        cfg, notes = _resumed_config(meta, cfg, given, ckpt_path)
        tokenizer = tokenizer_from_dict(meta["tokenizer"])
    elif cfg.init_from:  # fine-tune a GPT-2 checkpoint: its size and its tokenizer
        rng.manual_seed(cfg.run.seed)
        model_config, pretrained_state, tokenizer = _pretrained(cfg)
        cfg = replace(cfg, model=model_config)
    else:
        rng.manual_seed(cfg.run.seed)
    data, tokenizer = _load_data(cfg, tokenizer)
    if not cfg.init_from:
        cfg = replace(cfg, model=replace(cfg.model, vocab_size=tokenizer.vocab_size))
    data.check_block_size(cfg.model.block_size)
    model = _model(cfg, tokenizer).to(device=cfg.run.device, dtype=np.dtype(cfg.dtype))
    optimizer = AdamW(param_groups(model.named_parameters(), cfg.optim.weight_decay), lr=cfg.optim.lr,
                      betas=(cfg.optim.beta1, cfg.optim.beta2))
    source = cfg.tokens or cfg.data  # the file trained on (None: the built-in corpus)
    state = {"step": 0, "best_val": math.inf, "batch_rng": np.random.default_rng(cfg.run.seed), "notes": notes,
             "data_sha256": getattr(data, "sha256", None) or (file_sha256(source) if source else None)}
    if cfg.init_from and not resume:
        model.load_state_dict(pretrained_state)
    if resume:
        if meta["model_config"] != model.config.to_dict():
            raise ValueError(f"{ckpt_path}: checkpoint model config {meta['model_config']} does not match "
                             f"{model.config.to_dict()}")
        recorded = meta.get("data_sha256")
        if recorded and recorded != state["data_sha256"]:
            raise ValueError(f"{source} has changed since {ckpt_path} was written (its SHA-256 differs from the one "
                             "recorded): a resumed run must train on the same data; restore the file, or start a "
                             "new run (another --out-dir)")
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optim_state)
        restore_random_state(meta, model, ckpt_path, f"sample from it, fine-tune from it (`finetune "
                             f"--ckpt {ckpt_path}`), or start a new run (another --out-dir)")
        state["batch_rng"].bit_generator.state = meta["batch_rng"]
        state["step"], state["best_val"] = meta["step"], meta["best_val"]
        state["evaluated_step"] = meta.get("evaluated_step", meta["step"])  # older checkpoints: at their step
    return cfg, model, optimizer, data, tokenizer, state


def _load_data(cfg, tokenizer=None):
    """(TokenData, tokenizer): the token file --tokens, or the text of --data (the built-in corpus
    when None) tokenized by `tokenizer`, else by the --tokenizer-file, else by one trained on it."""
    if tokenizer is None and cfg.tokenizer_file:
        path = Path(cfg.tokenizer_file)
        if not path.is_file():
            what = "a folder" if path.is_dir() else "no such file"
            raise FileNotFoundError(f"{path}: {what}; --tokenizer-file takes "
                                    f"the file `python -m tinygrad_lm tokenize --data TEXT --save {path}` writes")
        tokenizer = load_tokenizer(path)
    text, name = (None, None) if cfg.tokens else load_corpus(cfg.data)
    if tokenizer is None:  # (--tokens always comes with its --tokenizer-file)
        tokenizer = build_tokenizer(cfg.tokenizer, text, cfg.vocab_size, name=name)
    if cfg.objective == "mlm":  # [CLS] [SEP] [MASK] [PAD], ids after the vocabulary (a resumed run's has them)
        mlm.add_special_tokens(tokenizer)
    data = (TokenData.from_file(cfg.tokens, tokenizer, tokenizer_name=cfg.tokenizer_file) if cfg.tokens
            else TokenData(text, tokenizer))
    return data, tokenizer


def _resumed_config(meta, cfg, given, ckpt_path):
    """`config.resumed` for a train checkpoint, where --data, --tokens and --tokenizer-file may
    also name a new path: the same data moved (its SHA-256 matches the recorded one) or the same
    tokenizer. Refused, naming both paths, when the content differs."""
    saved = meta["train_config"]
    moved, notes = {}, []
    for name in ("data", "tokens", "tokenizer_file"):
        old, new = saved.get(name), getattr(cfg, name)
        if new == old or new is None or (given is not None and name not in given):
            continue
        flag = "--" + name.replace("_", "-")
        if old is None:
            raise ValueError(f"{flag} {new}: the run in {ckpt_path} did not use {flag}; resume without it, "
                             "or start a new run (another --out-dir)")
        if not Path(new).is_file():
            raise FileNotFoundError(f"{flag} {new}: no such file; the run in {ckpt_path} trained on {old}: pass its "
                                    "path, or the path of a copy of it")
        if name == "tokenizer_file":
            same = load_tokenizer(new).to_dict() == meta["tokenizer"]
        elif meta.get("data_sha256") is None:
            raise ValueError(f"{flag} {new}: {ckpt_path} records no hash of its data {old} (written by an older "
                             f"tinygrad_lm), so only that same path can be resumed: pass {flag} {old}")
        else:
            same = file_sha256(new) == meta["data_sha256"]
        if not same:
            raise ValueError(f"{flag} {new} is not what the run in {ckpt_path} trained on ({old}): their contents "
                             f"differ; resume with {old} or a copy of it, or start a new run (another --out-dir)")
        moved[name] = new
        notes.append(f"{flag} {old!r} -> {new!r} (the same content)")
        cfg = replace(cfg, **{name: old})
    for name in ("data", "tokens"):
        path = moved.get(name, saved.get(name))
        if path is not None and not Path(path).exists():
            raise FileNotFoundError(f"{path}: the run in {ckpt_path} trained on this file, which is not there any "
                                    f"more; pass its new place with --{name} NEW_PATH (the content must be the same)")
    where = f"{ckpt_path}: train_config{newer_writer(meta.get('tinygrad_lm_version'))}"  # a setting from a newer one?
    cfg, more = config.resumed(saved, cfg, where, given, meta["step"])
    return replace(cfg, **moved), notes + more


def _model(cfg, tokenizer):
    """The objective's model: a GPT (clm), or a BERT encoder with the MLM head of the same size (mlm)."""
    if cfg.objective == "mlm":
        from ..models.bert import BertForMaskedLM

        return BertForMaskedLM(mlm.encoder_config(cfg.model, tokenizer))
    return GPT(cfg.model)


def _pretrained(cfg):
    """(model config, state dict, tokenizer) of the GPT-2 folder `cfg.init_from`: its context
    cropped to cfg.model.block_size (the first rows of wpe), cfg.model.dropout, its tokenizer."""
    from ..hf.gpt2 import TOKENIZER_FILES, load_tokenizer

    pretrained = GPT.from_pretrained(cfg.init_from, dtype=cfg.dtype)  # a float64 run keeps a float64 file exact
    tokenizer = load_tokenizer(cfg.init_from)
    if tokenizer is None:
        raise FileNotFoundError(f"{cfg.init_from}: no tokenizer files ({' or '.join(' + '.join(f) for f in TOKENIZER_FILES)}); "
                                "--init-from fine-tunes with the checkpoint's own tokenizer")
    if tokenizer.vocab_size > pretrained.config.vocab_size:
        raise ValueError(f"{cfg.init_from}: the tokenizer has {tokenizer.vocab_size} tokens, the model only "
                         f"{pretrained.config.vocab_size}")
    block_size = min(cfg.model.block_size, pretrained.config.block_size)
    model_config = replace(pretrained.config, block_size=block_size, dropout=cfg.model.dropout)
    state = pretrained.state_dict()
    state["transformer.wpe.weight"] = state["transformer.wpe.weight"][:block_size]  # (block_size, C)
    return model_config, state, tokenizer


def load_model(path, device="cpu"):
    """(model, tokenizer, meta) from a checkpoint, ready for sampling or fine-tuning."""
    meta, model_state, _ = checkpoint.load(path)
    if meta.get("kind") == "sequence-classifier":  # a `finetune` checkpoint: a classifier head, no lm_head
        raise ValueError(f"{path} is a fine-tuned classifier (written by `finetune`), not a language model: sample "
                         "from the pretrained checkpoint it started from, or load it with "
                         "tinygrad_lm.run.finetune.load_classifier")
    if meta.get("objective", "clm") == "mlm":  # `train --objective mlm`: a BERT encoder, no lm_head to generate with
        raise ValueError(f"{path} is a masked-language-model (BERT) checkpoint (train --objective mlm), not a GPT: "
                         "an encoder does not generate text; fine-tune it with `python -m tinygrad_lm finetune "
                         f"--ckpt {path} --data LABELLED.jsonl`, or write it as a Hugging Face folder with "
                         "tinygrad_lm.models.bert.BertForMaskedLM.save_pretrained")
    try:
        config = GPTConfig(**meta["model_config"])
    except (TypeError, KeyError) as e:
        raise ValueError(f"{path}: checkpoint has an incompatible model config: {e}"
                         f"{newer_writer(meta.get('tinygrad_lm_version'))}") from None
    floats = [a.dtype for a in model_state.values() if np.issubdtype(a.dtype, np.floating)]
    model = GPT(config).to(dtype=np.result_type(*floats) if floats else None)  # the checkpoint's dtype (float64 runs)
    try:
        model.load_state_dict(model_state)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    tokenizer = tokenizer_from_dict(meta["tokenizer"])
    if tokenizer.vocab_size > config.vocab_size:  # ids the model has no row for: the parts do not belong together
        raise ValueError(f"{path}: its tokenizer has {tokenizer.vocab_size} tokens but the model only "
                         f"{config.vocab_size} (a tokenizer and a model from different runs?)")
    return model.to(device=device), tokenizer, meta


def _start(cfg, resume, overwrite, given):
    """Everything before the first step: the MPI group, the run folder (locked until run.close()),
    the model, optimizer, data and training state (`_setup`), the fast path unless --reference,
    and the Run that logs and saves. Returns (cfg, model, optimizer, data, batches, state, run, dist)."""
    dist = distributed.init(cfg.run.device) if cfg.run.dist else None  # this process's MPI rank, if any
    lock = claim_folder(cfg.run.out_dir, resume, overwrite, group=dist)  # this run alone writes there until run.close()
    try:
        cfg, model, optimizer, data, tokenizer, state = _setup(cfg, resume, given)
    except BaseException:
        lock.release()
        raise
    raw_model = state["model"] = model  # the GPT itself: what checkpoints hold and what samples
    if dist:  # every rank: rank 0's config and initial weights
        dist.check_same_config(asdict(cfg), cfg.optim.batch_size)
        dist.broadcast_parameters(raw_model)
    split, split_line = cores.batch_split(cfg, dist, model)  # --threads auto (the default): every core (cores.py)
    if not cfg.run.reference:  # the fast path (fast/): the same step with fused kernels, the batch split over threads
        model, optimizer = fast.speed_up(model, optimizer, **split)
    if dist:  # model(x, y) runs this rank's rows of the batch; its loss is the whole batch's
        model = distributed.Sharded(model, dist)

    def save(path, step):  # a checkpoint of the state after `step` steps (the streams as they stand)
        _save(path, raw_model, optimizer, cfg, tokenizer, step, state["best_val"], state["batch_rng"],
              state["data_sha256"], run.evaluated_step)

    run = Run(cfg.run, save, start_step=state["step"], group=dist,  # over MPI, rank 0 alone writes and prints
              evaluated_step=state.get("evaluated_step"), lock=lock)
    run.print(f"model: {raw_model.num_params():,} parameters | data: {len(data.train):,} train / "
              f"{len(data.val):,} val tokens | vocab {tokenizer.vocab_size} | device {cfg.run.device} | "
              f"{'reference' if cfg.run.reference else 'fast'} path | out {run.out_dir}"
              + (f" | from {cfg.init_from}, context {cfg.model.block_size}" if cfg.init_from else ""))
    run.print(split_line)  # "threads: 2 (auto)": how many threads split each batch, and why
    run.print(config.describe(cfg, replace(TrainConfig(), model=replace(GPTConfig(), vocab_size=cfg.model.vocab_size))))
    if resume:
        run.print(resuming(run.out_dir, state["step"], cfg.optim.max_iters))
    for note in state["notes"]:  # what --resume changed, as asked
        run.print(f"resuming at step {state['step']} with {note}")
    state["tokenizer"] = tokenizer
    # --diagnostics: wraps optimizer.step and hooks the blocks until run.close() (diagnostics.py); off: nothing
    state["diagnostics"] = diagnostics_for(cfg, raw_model, optimizer, run, state["step"], dist)
    return cfg, model, optimizer, data, _batches(cfg, tokenizer), state, run, dist


def train(cfg, resume=False, stop_at=None, overwrite=False, given=None):
    """Pretrain a GPT as configured; returns a summary dict (final losses, history, paths).

    Args:
        cfg: TrainConfig (`config.from_flat(TrainConfig, n_layer=2, ...)` sets it by flag names).
        resume: continue from `cfg.run.out_dir/ckpt.npz` exactly where it stopped.
        stop_at: stop after this step as if interrupted (checkpoint saved), for tests.
        overwrite: start over in an out_dir that holds a run (refused otherwise).
        given: with resume, the flat names the user set (None: all of cfg's); those that differ
            from the saved run must be safe to change (`config.resumed`).
    """
    cfg, model, optimizer, data, batches, state, run, dist = _start(cfg, resume, overwrite, given)
    B, K, T, step = cfg.optim.batch_size, cfg.optim.grad_accum, cfg.model.block_size, state["step"]
    losses, summary = [], {"out_dir": str(run.out_dir), "interrupted": False}
    try:
        while step < cfg.optim.max_iters:
            if run.should_evaluate(step):  # every eval_interval steps: evaluate, log, checkpoint
                _evaluate(model, data, cfg, step, state, run, batches)
            lr = learning_rate(step, cfg.optim)  # warmup, then cosine decay
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = batches(data.train, K * B, T, state["batch_rng"])  # {"idx": (K*B, T), "targets": (K*B, T)}
            loss = train_step(model, optimizer, micro_batches(batch, K, cfg.run.device), cfg.optim.grad_clip, dist)
            run.stop_if_not_finite(loss, step)  # NaN or inf: stop; the last checkpoint on disk stays
            step += 1
            losses.append(loss)
            run.log_step(step, cfg.optim.max_iters, loss, lr, tokens_per_step=K * B * T)
            if run.should_stop(step, stop_at):  # Ctrl-C or SIGTERM came (to any rank): stop between steps
                raise KeyboardInterrupt
        summary.update(_evaluate(model, data, cfg, step, state, run, batches))
    except KeyboardInterrupt:
        run.interrupted(step)  # saves ckpt.npz, unless a second Ctrl-C tore the step in flight
        summary["interrupted"] = True
    finally:
        run.close()
    return _finish(summary, step, losses, state, run, data, cfg, dist)


def _finish(summary, step, losses, state, run, data, cfg, dist):
    """The summary dict `train` returns, once every rank has finished writing."""
    if dist:  # rank 0 has written its checkpoints before any rank moves on (and may read them)
        dist.barrier()
    summary.update(step=step, losses=losses, seconds=run.seconds, best_val=state["best_val"], model=state["model"],
                   writer=run.writer, exit_code=run.exit_code, tokenizer=state["tokenizer"],
                   bytes_per_token=data.bytes_per_token, config=cfg)
    return summary


__all__ = ["TrainConfig", "TrainingStopped", "estimate_loss", "load_model", "next_token_batch", "train"]
