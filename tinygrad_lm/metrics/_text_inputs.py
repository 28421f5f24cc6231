"""The input checks BLEU and chrF share: hypotheses and references in sacreBLEU's layout.

    hypotheses = ["the cat sat", "hello"]               one string per sentence
    references = [["the cat sat down", "hi"],           reference stream 1: one string per sentence
                  ["a cat sat", None]]                  stream 2; None: no second reference there

A sentence may have any number of references (None fills the gaps in a stream), but at least
one. sacreBLEU zips the streams with the hypotheses and so silently drops lines when their
lengths differ; here a length mismatch, a bare string where a list belongs, or a non-string
line is an error that names the problem.
"""


def _lines(seq, what, allow_none=False):
    """list(seq), checked to hold strings (and None where allowed)."""
    if isinstance(seq, (str, bytes)):
        raise TypeError(f"{what} must be a list of strings, got a single {type(seq).__name__}")
    try:
        items = list(seq)
    except TypeError:
        raise TypeError(f"{what} must be a list of strings, got {type(seq).__name__}") from None
    for i, line in enumerate(items):
        if not (isinstance(line, str) or (allow_none and line is None)):
            raise TypeError(f"{what}[{i}] has type {type(line).__name__}, not str"
                            + (" (or None, for no reference)" if allow_none else ""))
    return items


def corpus_segments(hypotheses, references, metric):
    """[(hypothesis, [its references])] from sacreBLEU's layout, or a clear error.

    Args:
        hypotheses: one string per sentence.
        references: a list of reference streams, each with one string (or None) per sentence.
        metric: the metric's name, for the messages.
    """
    hyps = _lines(hypotheses, "hypotheses")
    if not hyps:
        raise ValueError(f"{metric} needs at least one hypothesis")
    if isinstance(references, (str, bytes)):
        raise TypeError(f"references must be a list of reference streams (lists of strings), got a single "
                        f"{type(references).__name__}")
    streams = list(references)
    if not streams:
        raise ValueError(f"{metric} needs at least one reference stream")
    for k, stream in enumerate(streams):
        if isinstance(stream, str):
            raise TypeError(f"references[{k}] is a str: references is a list of streams, one list of strings per "
                            "reference set; with one reference per sentence pass [refs], not refs")
        streams[k] = _lines(stream, f"references[{k}]", allow_none=True)
        if len(streams[k]) != len(hyps):
            raise ValueError(f"references[{k}] has {len(streams[k])} lines but there are {len(hyps)} hypotheses")
    segments = []
    for i, refs in enumerate(zip(*streams)):
        refs = [r for r in refs if r is not None]
        if not refs:
            raise ValueError(f"sentence {i} has no reference (every stream holds None there)")
        segments.append((hyps[i], refs))
    return segments


def sentence_segments(hypothesis, references, metric):
    """corpus_segments for one sentence: a hypothesis string and a list of its reference strings."""
    if not isinstance(hypothesis, str):
        raise TypeError(f"hypothesis must be a str, got {type(hypothesis).__name__}")
    refs = _lines(references, "references", allow_none=True)
    return corpus_segments([hypothesis], [[r] for r in refs], metric)
