"""Hugging Face interop: model folders of `config.json` + `model.safetensors`.

    safetensors_io.py   the format, for any model: reading and writing config.json and
                        model.safetensors (the `safetensors` package's NumPy API), with errors
                        naming the file and the key; a folder is written whole or not at all
                        (`write_folder`: staged beside it, config.json moved in last)
    gpt2.py             GPT-2's names and layouts: `transformers.GPT2LMHeadModel` <-> our `GPT`
                        (`GPT.from_pretrained`, `GPT.save_pretrained`), and the tokenizer files
    bert.py             BERT's config and tied/pooler tensors: `transformers.BertForMaskedLM` <->
                        our `BertForMaskedLM` (`from_pretrained`, `save_pretrained`)

Imports: tokenizer/ and files.py (writing whole files) only. Nothing here needs torch or
transformers; safetensors is the optional extra `hf` (`pip install -e .[hf]`). Leaves out: sharded
checkpoints (`model.safetensors.index.json`), PyTorch `.bin` pickles, and downloading from the Hub
(`hf download gpt2 --local-dir gpt2`).
"""
