"""Fine-tuning: one plain loop, `finetune(config)`, shaped like the pretraining loop `train.train`.

    model  = GPTForSequenceClassification.from_pretrained(cfg.ckpt, L)   (or random init: init="scratch");
             BertForSequenceClassification for a checkpoint of `train --objective mlm`
    data   = train / val (/ test) JSONL files, encoded with the checkpoint's tokenizer
    repeat max_iters times:
        lr (linear warmup, then cosine to min_lr, or constant)
        a batch of shuffled examples, right-padded, with its attention mask
        train_step (run/loop.py, pretraining's): model(ids, mask, labels), backward, clip, update
        every eval_interval steps: val loss, accuracy, macro-F1; checkpoint; keep the best
    reload the best-validation weights; print the val (and test) report with confusion matrix

A masked-language-model checkpoint (`train --objective mlm`) is fine-tuned by the same lines:
its classifier (models/bert_classifier.py) reads [CLS] text [SEP] + [PAD] and pools [CLS] through BERT's
pooler; `_classifier_class` picks the class from the checkpoint, once, before the loop.

As in pretraining, the same lines run on the fast path (`fast.speed_up`, the default, each batch
split over every core: `--threads auto`, run/cores.py) and on the textbook layers
(`reference=True`, `--reference`, one thread); the schedule, logging, checkpoint
writing, Ctrl-C and NaN handling are the shared ones of `tinygrad_lm/run/loop.py`.
Checkpoints are written like pretraining's (`checkpoint.save`, atomic): `ckpt.npz` at every
evaluation and on Ctrl-C, `best.npz` whenever validation macro-F1 improves (ties: lower val
loss). They hold the classifier weights, AdamW state, the label names, the tokenizer and the
configs; `load_classifier(path)` reads them back, and `resume=True` continues a run exactly
(batches are a pure function of the step, see `labeled.train_batch_indices`). Every logged step
and evaluation goes to `log.jsonl` in the run folder.
Over MPI (`mpiexec -n N ... finetune --dist mpi`) each rank steps on its rows of every batch and
the gradients are summed as in pretraining; every rank evaluates the whole validation split.
`--diagnostics` logs gradient norms, update/data ratios and block statistics as in pretraining
(diagnostics.py), set up before the loop.
Gradient accumulation (`grad_accum=K`, `--grad-accum K`): the step takes K*B examples and runs
forward and backward on K micro-batches of B in turn (each padded to its own longest, each loss
weighted by its share of the examples): the update of one K*B batch.
Prompt -> completion fine-tuning (`task="generate"`, `--task generate`) runs the same loop:
`finetune` takes the task's parts (set-up, batches, evaluation, checkpoints, final report) from
`Classify` below or from finetune_generate.py's `Generate`, and everything else is shared.
Leaves out: class weighting, early stopping (the best checkpoint is
kept instead), and layer-wise learning-rate decay.
"""
import numbers
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import config, cores
from .. import checkpoint, distributed, fast
from ..engine import rng
from ..engine.backend import check_device, to_device
from .config import OptimConfig, RunConfig
from .data import micro_batch_rows
from .diagnostics import diagnostics_for
from .log_file import append_record
from .loop import Run, claim_folder, learning_rate, resuming, train_step
from ..optim import AdamW, param_groups
from ..engine.tensor import no_grad
from .mlm import SpecialIds
from ..tokenizer import tokenizer_from_dict
from ..models.bert_classifier import BertForSequenceClassification
from .labeled import LabeledData, load_labeled, pad_batch, train_batch_indices
from .random_state import restore_random_state
from ..metrics import accuracy, confusion_matrix, format_confusion, macro_f1
from ..models.gpt_classifier import GPTForSequenceClassification

KIND = "sequence-classifier"


def _optim_defaults():  # fine-tuning's: smaller steps, fewer of them, lighter decay than pretraining's
    return OptimConfig(batch_size=16, max_iters=300, lr=3e-4, min_lr=3e-5, warmup_iters=30, weight_decay=0.01)


def _run_defaults():
    return RunConfig(eval_interval=50, out_dir="runs/finetune")


@dataclass
class FinetuneConfig:
    # data and starting point
    task: str = "classify"  # "classify" ({"text", "label"} lines) or "generate" ({"prompt", "completion"} lines)
    ckpt: str = None  # pretrained checkpoint (GPT, or BERT from --objective mlm): its tokenizer and size are used
    data: str = None  # training JSONL, one {"text": ..., "label": ...} (generate: {"prompt", "completion"}) per line
    val: str = None  # validation JSONL; None = hold out val_fraction of the training file
    test: str = None  # optional test JSONL, evaluated once at the end with the best weights
    val_fraction: float = 0.1
    init: str = "pretrained"  # "pretrained" (load the body) or "scratch" (same size and tokenizer, random)
    freeze_body: bool = False  # train the head only (a linear probe of the pretrained features)
    unknown_chars: str = "error"  # char tokenizers: "error" on an unseen character, or "drop" it
    dropout: float = None  # None keeps the checkpoint's dropout
    pooling: str = None  # GPT: "last" real token (GPT-2 / Hugging Face, the default) or "mean"; BERT: "cls"
    truncate: bool = False  # generate: cut too-long prompts from the left (else such an example is an error)
    max_new_tokens: int = None  # generate: tokens decoded per validation prompt (None: longest completion + 10)
    # the optimisation and how the run is carried out (shared with pretraining; other defaults)
    optim: OptimConfig = field(default_factory=_optim_defaults)
    run: RunConfig = field(default_factory=_run_defaults)
    eval_batch_size: int = 64

    def __post_init__(self):  # ckpt and data may be missing here (the defaults); finetune() requires them
        config.check_paths(self, "ckpt", "data", "val", "test")  # str or Path, stored as str
        config.check_switches(self)
        _check_config(self)

    @classmethod
    def from_dict(cls, values, where="finetune_config"):
        """A FinetuneConfig from `asdict(cfg)` (what checkpoints store)."""
        return config.from_dict(cls, values, where)


def _check_required(cfg):
    if cfg.ckpt is None or cfg.data is None:
        raise ValueError("fine-tuning needs a pretrained checkpoint (--ckpt) and a JSONL file (--data)")


def _check_config(cfg):
    """The settings' values, each refused by name (FinetuneConfig's __post_init__)."""
    if cfg.task not in ("classify", "generate"):
        raise ValueError(f"task must be 'classify' or 'generate', got {cfg.task!r}")
    if cfg.task == "generate" and (cfg.pooling is not None or cfg.freeze_body):
        raise ValueError("--pooling and --freeze-body are for --task classify (a classifier head); --task generate "
                         "trains the whole language model")
    if cfg.task == "classify" and (cfg.truncate or cfg.max_new_tokens is not None):
        raise ValueError("--truncate and --max-new-tokens are for --task generate; a classifier keeps the first "
                         "block_size tokens of each text and generates nothing")
    if cfg.max_new_tokens is not None and (not isinstance(cfg.max_new_tokens, numbers.Integral)
                                           or cfg.max_new_tokens <= 0):
        raise ValueError(f"max_new_tokens must be a positive integer, got {cfg.max_new_tokens!r}")
    if cfg.init not in ("pretrained", "scratch"):
        raise ValueError(f"init must be 'pretrained' or 'scratch', got {cfg.init!r}")
    if cfg.pooling not in (None, "last", "mean", "cls"):
        raise ValueError(f"pooling must be 'last' or 'mean' (GPT), 'cls' (BERT) or None, got {cfg.pooling!r}")
    if cfg.unknown_chars not in ("error", "drop"):
        raise ValueError(f"unknown_chars must be 'error' or 'drop', got {cfg.unknown_chars!r}")
    if not isinstance(cfg.eval_batch_size, numbers.Integral) or cfg.eval_batch_size <= 0:
        raise ValueError(f"eval_batch_size must be a positive integer, got {cfg.eval_batch_size!r}")
    if not isinstance(cfg.val_fraction, numbers.Real) or not 0.0 < cfg.val_fraction < 1.0:
        raise ValueError(f"val_fraction must be a number in (0, 1), got {cfg.val_fraction!r} (e.g. --val-fraction "
                         "0.1), or pass --val")
    if cfg.dropout is not None and (not isinstance(cfg.dropout, numbers.Real) or not 0.0 <= cfg.dropout < 1.0):
        raise ValueError(f"dropout must be a number in [0, 1) (0 disables it), got {cfg.dropout!r}; leave it out "
                         "to keep the checkpoint's")


def _subset(data, idx, path):
    return LabeledData(path, [data.texts[i] for i in idx], data.labels[idx], data.label_names,
                       [data.ids[i] for i in idx], [data.lines[i] for i in idx])


def _classifier_class(meta):
    """The classifier a checkpoint needs: BERT's for a masked-LM pretraining checkpoint (or a
    BERT classifier's), the GPT's otherwise."""
    if meta.get("objective") == "mlm" or meta.get("model_type") == "bert":
        return BertForSequenceClassification
    return GPTForSequenceClassification


def _model_config(cls, meta, path):
    """(config, block_size) of the body a checkpoint holds (the classifier class reads its config)."""
    config = cls.config_from_meta(meta, path)
    return config, (config.max_position_embeddings if cls is BertForSequenceClassification else config.block_size)


def _pooling(cfg, cls):
    """cfg.pooling, or the body's own (last token for a GPT, [CLS] for BERT); mismatches refused."""
    if cls is BertForSequenceClassification:
        if cfg.pooling not in (None, "cls"):
            raise ValueError(f"--pooling {cfg.pooling} is for GPT checkpoints; {cfg.ckpt} is a masked-LM (BERT) "
                             "checkpoint, whose classifier pools [CLS] through its pooler: use --pooling cls or "
                             "leave it unset")
        return "cls"
    if cfg.pooling == "cls":
        raise ValueError(f"--pooling cls is BERT's [CLS] pooler; {cfg.ckpt} is a GPT checkpoint (no [CLS]): use "
                         "--pooling last or mean")
    return cfg.pooling or "last"


def _pad_id(model):
    """The id padding is written with: BERT's [PAD], 0 for a GPT (the mask hides it either way)."""
    return getattr(model.config, "pad_token_id", 0)


def held_out(n, cfg):
    """(kept, held) sorted indices: round(n * val_fraction) of n training examples held out for
    validation, a fixed seeded choice (when no --val file is given)."""
    n_val = int(round(n * cfg.val_fraction))
    if n_val < 1 or n - n_val < 1:
        raise ValueError(f"{cfg.data}: {n} examples are too few to hold out a validation split; pass --val")
    perm = np.random.default_rng([cfg.run.seed, 7]).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def load_splits(cfg, tokenizer, block_size, label_names=None, specials=None):
    """(train, val, test or None) LabeledData; val is carved from train when cfg.val is None.
    `specials` (mlm.SpecialIds) wraps every text as [CLS] text [SEP], for a BERT encoder."""
    train = load_labeled(cfg.data, tokenizer, block_size, label_names, unknown=cfg.unknown_chars, specials=specials)
    names = train.label_names
    if cfg.val is not None:
        val = load_labeled(cfg.val, tokenizer, block_size, names, train_path=cfg.data, unknown=cfg.unknown_chars,
                           specials=specials)
    else:
        kept, held = held_out(len(train), cfg)
        train, val = (_subset(train, kept, f"{cfg.data} (train part)"),
                      _subset(train, held, f"{cfg.data} (held-out {len(held)})"))
    test = (load_labeled(cfg.test, tokenizer, block_size, names, train_path=cfg.data, unknown=cfg.unknown_chars,
                         specials=specials) if cfg.test is not None else None)
    return train, val, test


@no_grad()
def predict(model, ids_list, batch_size=64):
    """Logits (N, L) as a float64 NumPy array for a list of id arrays (eval mode, padded batches).

    `model` may be the fast path's DataParallel wrapper: each batch is then split over its threads.
    """
    was_training = model.training
    model.eval()
    # longest first, so each padded batch holds sequences of similar length
    order = np.argsort([-len(s) for s in ids_list], kind="stable")
    out = []
    try:
        for start in range(0, len(order), batch_size):
            sel = order[start:start + batch_size]
            ids, mask = pad_batch([ids_list[i] for i in sel], _pad_id(model))  # (b, T), (b, T)
            logits, _ = model(to_device(ids, model.device), to_device(mask, model.device))
            out.append(to_device(logits.data, "cpu").astype(np.float64))
    finally:
        model.train(was_training)
    logits = np.empty((len(ids_list), model.num_labels))
    if out:
        logits[order] = np.concatenate(out)
    return logits


def evaluate(model, data, batch_size=64):
    """Loss, accuracy, macro-F1 and confusion matrix of `model` on LabeledData `data`."""
    logits = predict(model, data.ids, batch_size)
    m = logits.max(axis=1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))  # (N, L) log-softmax
    pred = logits.argmax(axis=1)
    y = data.labels
    return {"loss": float(-logp[np.arange(len(y)), y].mean()), "accuracy": accuracy(y, pred),
            "macro_f1": macro_f1(y, pred, model.num_labels),
            "confusion": confusion_matrix(y, pred, model.num_labels), "predictions": pred}


def format_report(name, metrics, label_names):
    """A few lines: the split's loss, accuracy and macro-F1, then the confusion table."""
    return (f"{name}: loss {metrics['loss']:.4f} | accuracy {metrics['accuracy']:.4f} | "
            f"macro-F1 {metrics['macro_f1']:.4f} | {int(metrics['confusion'].sum())} examples\n"
            + format_confusion(metrics["confusion"], label_names))


def _save(path, model, optimizer, cfg, step, best, tokenizer, evaluated_step=None):
    meta = {"kind": KIND, "model_type": model.model_type, "model_config": model.config.to_dict(),
            "num_labels": model.num_labels,
            "pooling": model.pooling,
            "label_names": model.label_names, "finetune_config": asdict(cfg), "tokenizer": tokenizer.to_dict(),
            "step": step, "best": best, "evaluated_step": evaluated_step, "rng": rng.get_state()}
    checkpoint.save(path, model.state_dict(), optimizer.state_dict(), meta)


def load_classifier(path, device="cpu"):
    """(model, tokenizer, meta) from a checkpoint written by `finetune`."""
    meta, state, _ = checkpoint.load(path)
    if meta.get("kind") != KIND:
        raise ValueError(f"{path} is not a fine-tuned classifier checkpoint (a pretrained GPT? use "
                         "GPTForSequenceClassification.from_pretrained)")
    cls = _classifier_class(meta)
    model = cls(_model_config(cls, meta, path)[0], meta["num_labels"], meta["label_names"],
                meta.get("pooling", "last"))
    floats = [a.dtype for a in state.values() if np.issubdtype(a.dtype, np.floating)]
    model = model.to(dtype=np.result_type(*floats) if floats else None)  # the checkpoint's dtype (float64 runs)
    try:
        model.load_state_dict(state)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return model.to(device=device), tokenizer_from_dict(meta["tokenizer"]), meta


def prepare_device(cfg):
    """Check the run's device; on CUDA, set TF32 as asked (both tasks' set-up starts here)."""
    check_device(cfg.run.device)
    if cfg.run.device == "cuda":  # float32 matmuls: exact float32 unless --tf32 (fast/cuda/tf32.py)
        from ..fast.cuda.tf32 import set_tf32

        set_tf32(cfg.run.tf32)


def _setup(cfg, resume, given=None):
    """Model, optimizer, tokenizer, data splits and the loop's state: fresh, or from out_dir/ckpt.npz."""
    prepare_device(cfg)
    notes = []
    if resume:
        ckpt_path = Path(cfg.run.out_dir) / "ckpt.npz"
        meta, state, optim_state = checkpoint.load(ckpt_path)
        if meta.get("kind") != KIND and "train_config" in meta:  # --out-dir names a pretraining run's folder
            raise ValueError(f"{ckpt_path} is a pretraining checkpoint (written by `train`): continue that run with "
                             f"`train --resume --out-dir {cfg.run.out_dir}`, or fine-tune from it in another --out-dir "
                             f"with --ckpt {ckpt_path}")
        if meta.get("kind") != KIND:
            raise ValueError(f"{ckpt_path} is not a fine-tuning checkpoint; cannot resume")
        # a resumed run continues the saved run: only where and how it runs may change
        cfg, notes = config.resumed(meta["finetune_config"], cfg, f"{ckpt_path}: finetune_config", given,
                                    meta["step"])
        tokenizer = tokenizer_from_dict(meta["tokenizer"])
        cls = _classifier_class(meta)
        model_config, block_size = _model_config(cls, meta, ckpt_path)
        specials = SpecialIds.of(tokenizer) if cls is BertForSequenceClassification else None
        train, val, test = load_splits(cfg, tokenizer, block_size, meta["label_names"], specials)
        model = cls(model_config, meta["num_labels"], meta["label_names"], _pooling(cfg, cls))
        model.load_state_dict(state)
        if cfg.freeze_body:
            model.freeze_body()
        model.to(device=cfg.run.device)
        state = {"step": meta["step"], "best": meta["best"], "notes": notes,
                 "evaluated_step": meta.get("evaluated_step", meta["step"])}  # older checkpoints: at their step
    else:
        rng.manual_seed(cfg.run.seed)
        meta, _, _ = checkpoint.load(cfg.ckpt)
        tokenizer = tokenizer_from_dict(meta["tokenizer"])
        cls = _classifier_class(meta)  # GPT, or BERT for a masked-LM checkpoint
        pooling = _pooling(cfg, cls)
        _, block_size = _model_config(cls, meta, cfg.ckpt)
        specials = SpecialIds.of(tokenizer) if cls is BertForSequenceClassification else None
        train, val, test = load_splits(cfg, tokenizer, block_size, specials=specials)
        names = train.label_names
        if cfg.init == "pretrained":
            model = cls.from_pretrained(cfg.ckpt, len(names), cfg.freeze_body, names, cfg.dropout,
                                        verbose=not cfg.run.quiet, device=cfg.run.device, pooling=pooling)
        else:
            model = cls.from_scratch_like(cfg.ckpt, len(names), names, cfg.dropout, cfg.run.device, pooling)
            if cfg.freeze_body:
                model.freeze_body()
            if not cfg.run.quiet:
                print(f"random initialisation (from scratch) with the tokenizer and size of {cfg.ckpt}", flush=True)
        state = {"step": 0, "best": None, "notes": notes}
    optimizer = AdamW(param_groups(model.named_parameters(), cfg.optim.weight_decay), lr=cfg.optim.lr,
                      betas=(cfg.optim.beta1, cfg.optim.beta2))
    if resume:
        optimizer.load_state_dict(optim_state)
        restore_random_state(meta, model, ckpt_path, "start a new fine-tuning run (another "
                             "--out-dir) from the pretrained checkpoint this one started from")
    return cfg, model, optimizer, tokenizer, (train, val, test), state


def _better(metrics, best):
    if best is None:
        return True
    return (metrics["macro_f1"], -metrics["loss"]) > (best["macro_f1"], -best["loss"])


def _evaluate(model, val, cfg, step, state, run):
    """Evaluate on the validation split, log, checkpoint (best.npz when it improved); returns the record."""
    metrics = evaluate(model, val, cfg.eval_batch_size)
    record = {"step": step, "val_loss": metrics["loss"], "val_accuracy": metrics["accuracy"],
              "val_macro_f1": metrics["macro_f1"]}
    improved = _better(metrics, state["best"])
    if improved:
        state["best"] = {"loss": metrics["loss"], "accuracy": metrics["accuracy"],
                         "macro_f1": metrics["macro_f1"], "step": step}
    run.evaluated(record, improved, f"step {step}: val loss {metrics['loss']:.4f} | accuracy "
                                    f"{metrics['accuracy']:.4f} | macro-F1 {metrics['macro_f1']:.4f}")
    return record


def _micro_batches(data, sel, k, model, device):
    """This step's examples `sel` as k (micro-batch, weight) pairs for `train_step`: each micro-batch
    right-padded to its own longest sequence, with its attention mask and labels."""
    out = []
    for rows, weight in micro_batch_rows(data.labels[sel], k):
        ids, mask = pad_batch([data.ids[i] for i in sel[rows]], _pad_id(model))  # (B, T) right-padded ids, real mask
        out.append(({"idx": to_device(ids, device), "attention_mask": to_device(mask, device),
                     "labels": data.labels[sel[rows]]}, weight))
    return out


class Classify:
    """The classifier's parts of the loop `finetune` runs (finetune_generate.Generate: the other task's)."""
    setup, save, evaluate = staticmethod(_setup), staticmethod(_save), staticmethod(_evaluate)
    micro_batches = staticmethod(_micro_batches)

    @staticmethod
    def describe(model, cfg, tokenizer):
        trainable = sum(p.size for _, p in model.trainable_named_parameters())
        return (f"model: {model.num_params():,} parameters ({trainable:,} trainable) | {len(model.label_names)} labels")

    @staticmethod
    def final_report(summary, val, test, cfg, state, run):
        _final_report(summary, val, test, cfg, state, run)


def _task(cfg, resume, given):
    """The task's parts of the loop: `Classify`, or `Generate` for --task generate; a resumed run's
    task is its checkpoint's (unless --task is given, which `config.resumed` then checks)."""
    name = cfg.task
    if resume and (given is None or "task" not in given):
        meta = checkpoint.load(Path(cfg.run.out_dir) / "ckpt.npz")[0]
        name = meta.get("finetune_config", {}).get("task", "classify")
    if name == "generate":
        from .finetune_generate import Generate

        return Generate
    return Classify


def finetune(cfg, resume=False, stop_at=None, overwrite=False, given=None):
    """Fine-tune a classifier (or, with task="generate", a prompt -> completion LM) as configured;
    returns a summary dict.

    Args:
        cfg: FinetuneConfig (`config.from_flat(FinetuneConfig, ckpt=..., lr=1e-3)` sets it by flag names).
        resume: continue from `cfg.run.out_dir/ckpt.npz` exactly where it stopped.
        stop_at: stop after this step as if interrupted (checkpoint saved), for tests.
        overwrite: start over in an out_dir that holds a run (refused otherwise).
        given: with resume, the flat names the user set (None: all of cfg's); see `config.resumed`.
    Returns:
        dict with "model" (the best-validation weights), "tokenizer", "label_names", "val" and
        (when cfg.test is set) "test" metrics of the best model, "history" (training losses),
        "evals", "step", "interrupted", "out_dir", "seconds".
    """
    _check_required(cfg)
    dist = distributed.init(cfg.run.device) if cfg.run.dist else None  # this process's MPI rank, if any
    with claim_folder(cfg.run.out_dir, resume, overwrite, group=dist):  # this run alone writes there until it returns
        return _finetune(cfg, resume, stop_at, given, dist)


def _finetune(cfg, resume, stop_at, given, dist):
    """`finetune`, in its locked run folder: set up, the loop, the final report."""
    task = _task(cfg, resume, given)  # Classify, or finetune_generate.Generate
    cfg, model, optimizer, tokenizer, (train, val, test), state = task.setup(cfg, resume, given)
    raw_model = model  # the model itself (not a fast-path wrapper): what checkpoints hold
    if dist:  # every rank: rank 0's config and initial weights
        dist.check_same_config(asdict(cfg), cfg.optim.batch_size)
        dist.broadcast_parameters(raw_model)
    split, split_line = cores.batch_split(cfg, dist, model)  # --threads auto (the default): every core (cores.py)
    if not cfg.run.reference:  # the fast path (fast/): the same step with fused kernels, the batch split over threads
        model, optimizer = fast.speed_up(model, optimizer, **split)
    # over MPI the step runs this rank's rows (evaluation runs whole on every rank: the same metrics)
    step_model = distributed.Sharded(model, dist) if dist else model
    step = state["step"]

    def save(path, step):  # a checkpoint of the state after `step` steps
        task.save(path, raw_model, optimizer, cfg, step, state["best"], tokenizer, run.evaluated_step)

    run = Run(cfg.run, save, start_step=step, group=dist,  # over MPI, rank 0 alone writes and prints
              evaluated_step=state.get("evaluated_step"))
    run.print(train.summary())
    run.print(val.summary())
    run.print(f"{task.describe(raw_model, cfg, tokenizer)} | {'reference' if cfg.run.reference else 'fast'} path | "
              f"out {run.out_dir}")
    run.print(split_line)  # "threads: 2 (auto)": how many threads split each batch, and why
    run.print(config.describe(cfg))  # the settings that differ from the defaults (flags and --config file)
    if resume:
        run.print(resuming(run.out_dir, step, cfg.optim.max_iters))
    for note in state["notes"]:  # what --resume changed, as asked
        run.print(f"resuming at step {step} with {note}")
    diagnostics_for(cfg, raw_model, optimizer, run, step, dist)  # --diagnostics, detached by run.close(); off: nothing
    device = cfg.run.device
    history, summary = [], {"out_dir": str(run.out_dir), "interrupted": False, "evals": [],
                            "label_names": getattr(raw_model, "label_names", None)}
    try:
        while step < cfg.optim.max_iters:
            # ---- evaluate and checkpoint every eval_interval steps (not at the step the run starts at)
            if run.should_evaluate(step):
                summary["evals"].append(task.evaluate(model, val, cfg, step, state, run))
            # ---- one optimisation step
            lr = learning_rate(step, cfg.optim)
            for group in optimizer.param_groups:
                group["lr"] = lr
            K = cfg.optim.grad_accum
            sel = train_batch_indices(len(train), step, K * cfg.optim.batch_size, cfg.run.seed)  # this step's examples
            loss_value = train_step(step_model, optimizer, task.micro_batches(train, sel, K, raw_model, device),
                                    cfg.optim.grad_clip, dist)
            run.stop_if_not_finite(loss_value, step)  # NaN or inf: stop; the last checkpoint on disk stays
            step += 1
            history.append(loss_value)
            # ---- progress line and log record every log_interval steps
            run.log_step(step, cfg.optim.max_iters, loss_value, lr)
            if run.should_stop(step, stop_at):  # Ctrl-C or SIGTERM came (to any rank): stop between steps
                raise KeyboardInterrupt
        summary["evals"].append(task.evaluate(model, val, cfg, step, state, run))
    except KeyboardInterrupt:
        run.interrupted(step)  # saves ckpt.npz, unless a second Ctrl-C tore the step in flight
        summary["interrupted"] = True
    finally:
        run.close()
    if dist:  # rank 0 has written its checkpoints before any rank moves on (and may read them)
        dist.barrier()
    summary.update(step=step, history=history, best=state["best"], seconds=run.seconds, tokenizer=tokenizer,
                   config=cfg, writer=run.writer, exit_code=run.exit_code)
    if summary["interrupted"] or not run.writer:  # over MPI, rank 0 alone reports (from its best.npz)
        summary["model"] = raw_model
        return summary
    task.final_report(summary, val, test, cfg, state, run)
    return summary


def _final_report(summary, val, test, cfg, state, run):
    """Reload the best-validation weights (what best.npz holds) and report val (and test) with them."""
    best_path = run.out_dir / "best.npz"
    best_model, _, _ = load_classifier(best_path, device=cfg.run.device)
    names = best_model.label_names
    summary["model"] = best_model
    summary["val"] = evaluate(best_model, val, cfg.eval_batch_size)
    run.print(f"\nbest checkpoint (step {state['best']['step']}): {best_path}")
    run.print(format_report("val", summary["val"], names))
    if test is not None:
        summary["test"] = evaluate(best_model, test, cfg.eval_batch_size)
        run.print(format_report("test", summary["test"], names))
        append_record(run.out_dir / "log.jsonl", {  # whole or not at all (log_file.py)
            "step": summary["step"], "best_step": state["best"]["step"], "test_loss": summary["test"]["loss"],
            "test_accuracy": summary["test"]["accuracy"], "test_macro_f1": summary["test"]["macro_f1"]})
