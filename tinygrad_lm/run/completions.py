"""Prompt -> completion data for generative fine-tuning: JSONL files, the end token, loss masks, batches.

A completion file holds one JSON object per line, `{"prompt": "...", "completion": "..."}`;
blank lines are skipped; other keys are ignored. Every mistake raises one ValueError naming
the file and the 1-based line: malformed JSON, a line that is not an object, a missing
"prompt" or "completion" key, a value that is not a string, an empty completion, a file with
no examples (labeled.json_lines reads the lines, as for the classifier's files).

The model reads one sequence per example and learns to continue a prompt with its completion
and then to stop. As in pretraining, the target of position t is token t + 1; but only the
completion's tokens and the end token are targets. The prompt's positions (and the padding)
hold the ignored index -1, so the cross-entropy (models/gpt.py, `ignore_index=-1`) gives them
no loss and no gradient at all: the "completion-only loss" of Hugging Face TRL's SFTTrainer,
whose ignored label is -100.

    tokens    p0  p1  p2  c0  c1  END
    idx       p0  p1  p2  c0  c1            T = len(prompt) + len(completion): END is only a target
    targets   -1  -1  c0  c1  END

The end-of-completion token is GPT-2's "<|endoftext|>": the tokenizer's own where it has one (a
GPT-2 tokenizer), else added as a special token by `add_end_token` (its id the next after the
vocabulary; the GPT then grows by one row, `GPT.resize_token_embeddings`). Texts are encoded as
plain text: the characters "<|endoftext|>" inside a prompt are characters, never the end token.
An empty prompt is read as the end token alone (GPT-2 starts its texts with it), so the first
completion token is predicted from something.

Length: the model reads prompt + completion, at most block_size tokens. A longer example is
refused with its file, line and lengths; with `truncate=True` the prompt loses its FIRST tokens
(left truncation keeps the end of the prompt, next to the completion), and how many examples and
tokens were cut is counted (`CompletionData.summary`, printed by the run). A completion that
leaves no room for one prompt token is refused either way: the completion is what is learned and
scored, and is never cut. Char-level tokenizers: a character outside the vocabulary is an error
naming it, or dropped with `unknown="drop"`, as for the classifier's files.

Batches (`lm_batch`) are right-padded with the end token, their targets -1 on the padding. They
need no attention mask: attention is causal, so a real position never reads the padding after it
and its logits are those of the unpadded sequence (tested).
Leaves out: chat templates and multi-turn data, packing several examples into one sequence, a
weighted (rather than zero) loss on the prompt, and streaming huge files.
"""
from dataclasses import dataclass, field

import numpy as np

from .labeled import json_lines

END_TOKEN = "<|endoftext|>"
IGNORE = -1  # the GPT's ignored target index
EXAMPLE = '{"prompt": "...", "completion": "..."}'


@dataclass
class CompletionData:
    """One prompt -> completion file, encoded.

    Attributes:
        path: the file it was read from.
        prompts, completions: the raw texts.
        prompt_ids: one int64 array per example, after any left truncation (the end token alone
            for an empty prompt); completion_ids: one int64 array per example, without the end token.
        lines: the 1-based line number of each example in the file.
        end_id: the end-of-completion token's id; tokenizer: the tokenizer that encoded the texts.
        truncated: examples whose prompt lost tokens (truncate=True); cut_tokens: tokens cut in all.
        dropped_chars: characters removed under unknown="drop" (0 otherwise).
    """
    path: str
    end_id: int
    tokenizer: object = field(default=None, repr=False)
    prompts: list = field(default_factory=list)
    completions: list = field(default_factory=list)
    prompt_ids: list = field(default_factory=list)
    completion_ids: list = field(default_factory=list)
    lines: list = field(default_factory=list)
    truncated: int = 0
    cut_tokens: int = 0
    dropped_chars: int = 0

    def __len__(self):
        return len(self.prompts)

    def subset(self, idx, path):
        """The examples `idx` (in that order) as a CompletionData named `path`."""
        out = CompletionData(path, self.end_id, self.tokenizer)
        for name in ("prompts", "completions", "prompt_ids", "completion_ids", "lines"):
            setattr(out, name, [getattr(self, name)[i] for i in idx])
        return out

    def summary(self):
        p = [len(i) for i in self.prompt_ids] or [0]
        c = [len(i) for i in self.completion_ids] or [0]
        cut = (f", {self.truncated} prompts truncated from the left ({self.cut_tokens} tokens cut)"
               if self.truncated else ", none truncated")
        return (f"{self.path}: {len(self)} examples, prompts {np.mean(p):.1f} tokens on average (longest {max(p)}), "
                f"completions {np.mean(c):.1f} (longest {max(c)}) + the end token{cut}"
                + (f", {self.dropped_chars} unknown characters dropped" if self.dropped_chars else ""))


def read_completions(path):
    """[(line number, prompt, completion)] of a prompt -> completion JSONL file (module doc)."""
    rows = []
    for n, obj in json_lines(path, EXAMPLE):
        where = f"{path}, line {n}"
        for key in ("prompt", "completion"):
            if key not in obj:
                hint = " (labelled lines are for --task classify)" if "label" in obj else ""
                raise ValueError(f"{where}: missing the {key!r} key (keys present: {sorted(obj)}); each line must "
                                 f"be one object like {EXAMPLE}{hint}")
            if not isinstance(obj[key], str):
                raise ValueError(f"{where}: \"{key}\" must be a string, got {type(obj[key]).__name__} "
                                 f"{obj[key]!r:.40}")
        if not obj["completion"]:
            raise ValueError(f"{where}: \"completion\" is empty; every example needs at least one character to "
                             "learn (the end token alone teaches nothing about the task)")
        rows.append((n, obj["prompt"], obj["completion"]))
    return rows


def end_token_id(tokenizer):
    """The id of END_TOKEN in `tokenizer`, or None when it has none."""
    found = getattr(tokenizer, "special_tokens", {}).get(END_TOKEN)
    return None if found is None else int(found)


def add_end_token(tokenizer):
    """The end token's id, added to `tokenizer` (in place, the id after its vocabulary) when missing."""
    if end_token_id(tokenizer) is None:
        tokenizer.add_special_tokens([END_TOKEN])
    return end_token_id(tokenizer)


def encode_plain(tokenizer, text, unknown="error", where=""):
    """(int64 ids, characters dropped) of `text` as plain text (special-token strings are characters).

    `unknown`: "error" or "drop" for characters a char-level tokenizer lacks.
    """
    dropped = 0
    if unknown == "drop" and hasattr(tokenizer, "chars"):
        known = set(tokenizer.chars)
        kept = "".join(c for c in text if c in known)
        text, dropped = kept, len(text) - len(kept)
    encode = getattr(tokenizer, "encode_ordinary", tokenizer.encode)  # BPE: never a special id from text
    try:
        ids = encode(text)
    except ValueError as e:
        raise ValueError(f"{where}: {e}; the checkpoint's tokenizer cannot encode this text (--unknown-chars drop "
                         "removes such characters)") from None
    return np.asarray(ids, dtype=np.int64), dropped


def fit_length(prompt, completion, block_size, truncate, where):
    """(prompt, tokens cut): the prompt ids kept so that prompt + completion fit block_size.

    Refuses (ValueError naming `where` and the lengths) what does not fit, unless `truncate`,
    which cuts the prompt's first tokens; a completion leaving no room for one prompt token is
    refused either way.
    """
    over = len(prompt) + len(completion) - block_size
    if over <= 0:
        return prompt, 0
    lengths = (f"prompt {len(prompt)} + completion {len(completion)} tokens = {len(prompt) + len(completion)} > "
               f"block_size {block_size} (the model reads the prompt and the completion; the end token is only "
               "predicted)")
    if len(completion) >= block_size:
        raise ValueError(f"{where}: {lengths}; the completion alone leaves no room for the prompt, and completions "
                         "are never cut: shorten it, or fine-tune a checkpoint with a larger block size")
    if not truncate:
        raise ValueError(f"{where}: {lengths}; shorten the example, or pass --truncate to cut the prompt from the "
                         "left (its first tokens)")
    return prompt[over:], over


def load_completions(path, tokenizer, block_size, end_id, truncate=False, unknown="error"):
    """Read, check and encode a prompt -> completion JSONL file.

    Args:
        path: the JSONL file.
        tokenizer: the checkpoint's tokenizer (holding the end token, `add_end_token`).
        block_size: the model's context length (module doc: Length).
        end_id: the end token's id.
        truncate: cut over-long prompts from the left instead of refusing them.
        unknown: "error" or "drop" for characters a char-level tokenizer lacks.
    Returns:
        CompletionData.
    """
    data = CompletionData(str(path), int(end_id), tokenizer)
    for n, prompt, completion in read_completions(path):
        where = f"{path}, line {n}"
        p, dropped_p = encode_plain(tokenizer, prompt, unknown, where)
        c, dropped_c = encode_plain(tokenizer, completion, unknown, where)
        if len(c) == 0:
            raise ValueError(f"{where}: every character of the completion is unknown to the tokenizer")
        if len(p) == 0:
            p = np.array([end_id], dtype=np.int64)  # an empty prompt: the end token starts the text
        p, cut = fit_length(p, c, block_size, truncate, where)
        data.prompts.append(prompt)
        data.completions.append(completion)
        data.prompt_ids.append(p)
        data.completion_ids.append(c)
        data.lines.append(n)
        data.truncated += cut > 0
        data.cut_tokens += cut
        data.dropped_chars += dropped_p + dropped_c
    return data


def lm_batch(prompt_ids, completion_ids, end_id):
    """The model's inputs for B examples: right-padded ids and next-token targets, prompts masked.

    Args:
        prompt_ids, completion_ids: B non-empty 1-D integer arrays each.
        end_id: the end token's id (ends every completion, and pads).
    Returns:
        idx (B, T) int64 and targets (B, T) int64, T = the longest prompt + completion: targets[b, t]
        is token t + 1 of prompt + completion + END where that token is a completion token or END,
        and -1 elsewhere (the prompt, the padding).

    >>> idx, targets = lm_batch([np.array([5, 6]), np.array([7])], [np.array([8]), np.array([9, 9])], end_id=0)
    >>> idx.tolist(), targets.tolist()
    ([[5, 6, 8], [7, 9, 9]], [[-1, 8, 0], [9, 9, 0]])
    """
    seqs = [np.concatenate([p, c, [end_id]]).astype(np.int64) for p, c in zip(prompt_ids, completion_ids)]
    T = max(len(s) for s in seqs) - 1
    idx = np.full((len(seqs), T), end_id, dtype=np.int64)  # (B, T)
    targets = np.full((len(seqs), T), IGNORE, dtype=np.int64)  # (B, T)
    for b, (s, p) in enumerate(zip(seqs, prompt_ids)):
        idx[b, :len(s) - 1] = s[:-1]
        targets[b, len(p) - 1:len(s) - 1] = s[len(p):]  # the completion and END, read from the prompt's last token
    return idx, targets
