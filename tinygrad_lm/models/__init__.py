"""The models, built from nn/ layers: what a checkpoint holds.

    gpt.py             GPTConfig, Transformer (the body), GPT (GPT-2's names), generate, sample_text
    bert.py            BertConfig, Bert (bidirectional encoder), BertForMaskedLM
    classifier.py      SequenceClassifier: what the two classifiers share (labels, loss, freezing)
    gpt_classifier.py  GPTForSequenceClassification: the GPT body + a class head on the last token
    bert_classifier.py BertForSequenceClassification: the encoder + pooler on [CLS] + a class head

Models read and write Hugging Face folders through hf/ (`from_pretrained`, `save_pretrained`
import it inside the method) and the classifiers read a pretraining checkpoint through
checkpoint.py (the file format, beside); they know nothing of runs, optimizers or the command line.
"""
