"""Fine-tuning a pretrained GPT (or BERT encoder) for text classification, one concept per file.

    classifier.py SequenceClassifier: what both classifiers share (labels, loss, freeze_body,
                  from_pretrained with its LoadReport)
    model.py      GPTForSequenceClassification: GPT body + linear head on the last real token;
                  from_pretrained (load a GPT checkpoint by name, report), freeze_body
    bert_model.py BertForSequenceClassification: BERT encoder + pooler on [CLS] + dropout + linear
                  classifier, for checkpoints of `train --objective mlm` (chosen from the checkpoint)
    data.py       labelled JSONL files with line-numbered errors, the label set, encoding,
                  right-padded batches with attention masks, shuffled-epoch batch indices
    metrics.py    accuracy, macro_f1, confusion_matrix (pure NumPy) and a confusion table
    loop.py       FinetuneConfig (nests config.OptimConfig and RunConfig, as pretraining's does)
                  and the plain loop `finetune(cfg)`; evaluate, predict, load_classifier
    command.py    the `finetune` subcommand: config.add_flags, as `train` has
    baselines.py  the majority class and bag-of-words logistic regression (package Tensors)

    from tinygrad_lm.finetune import FinetuneConfig, finetune
    result = finetune(FinetuneConfig(ckpt="runs/shakespeare/best.npz", data="train.jsonl", val="val.jsonl"))
    result["val"]["accuracy"], result["val"]["macro_f1"]
    # settings by their flag names: config.from_flat(FinetuneConfig, ckpt=..., data=..., lr=1e-3, reference=True)

From the shell: `python -m tinygrad_lm finetune --ckpt PRETRAINED.npz --data LABELED.jsonl`.
Leaves out: token-level tasks (tagging), generative instruction tuning and LoRA adapters.
"""
from .baselines import BagOfWordsLogReg, majority_baseline
from .data import LabeledData, load_labeled, pad_batch, read_jsonl
from .loop import FinetuneConfig, evaluate, finetune, format_report, load_classifier, predict
from .metrics import accuracy, confusion_matrix, format_confusion, macro_f1
from .bert_model import BertForSequenceClassification
from .classifier import LoadReport, SequenceClassifier
from .model import GPTForSequenceClassification

__all__ = ["GPTForSequenceClassification", "BertForSequenceClassification", "SequenceClassifier", "LoadReport",
           "FinetuneConfig", "finetune", "evaluate", "predict", "load_classifier", "format_report", "LabeledData",
           "load_labeled", "read_jsonl", "pad_batch", "accuracy", "macro_f1", "confusion_matrix", "format_confusion",
           "BagOfWordsLogReg", "majority_baseline"]
