"""The run: everything that turns the models into a training job a user starts from the shell.

    train.py      pretraining: `train(cfg)`, one plain while loop around `train_step`; its
                  checkpoints (written by `checkpoint.py`, the file format) read back by `load_model`;
                  random_state.py restores a resumed run's random state (or says why it cannot)
    finetune.py   fine-tuning a classifier: `finetune(cfg)`, the same step
    loop.py       `train_step` (forward, backward, clip, update) and what the loops share around
                  it: the run folder, log lines, evaluation cadence, NaN stop, Ctrl-C;
                  log_file.py keeps log.jsonl whole, each step once after a resume
    folder_lock.py  one writer per run folder (an OS lock on --out-dir); streams.py, printing
                  that a closed stdout or stderr (`| head`, a lost terminal) does not end the run
    config.py     OptimConfig, RunConfig; one flag per setting; --config run.toml files
    data.py       the built-in corpus, cached token files, `get_batch`, micro-batches
    labeled.py    labelled JSONL for fine-tuning; mlm.py, the masked-LM objective
    plot.py       loss curves (the metrics, accuracy to BLEU, are tinygrad_lm/metrics/)
    diagnostics.py  `--diagnostics`: gradient norms, update/data ratios, block activations in
                  log.jsonl; plot_diagnostics.py draws them (`plot RUN --diagnostics`)
    evaluate.py   `evaluate`: a checkpoint scored without training; perplexity.py, sliding-window
                  perplexity and BERT's masked-token score; plot_confusion.py, progress.py
    baselines.py  the majority class and a bag-of-words logistic regression, to compare with
    datasets.py   `data shakespeare`; cli.py, `python -m tinygrad_lm ...`

It sits on top: it may import every other layer, and none of them imports it.
"""
