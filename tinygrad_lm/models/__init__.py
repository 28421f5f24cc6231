"""The models, built from nn/ layers: what a checkpoint holds.

    gpt.py             GPTConfig, Transformer (the body), GPT (GPT-2's names), generate, sample_text
    bert.py            BertConfig, Bert (bidirectional encoder), BertForMaskedLM
    classifier.py      SequenceClassifier: what the two classifiers share (labels, loss, freezing)
    gpt_classifier.py  GPTForSequenceClassification: the GPT body + a class head on the last token
    bert_classifier.py BertForSequenceClassification: the encoder + pooler on [CLS] + a class head
    baselines.py       the majority class and a bag-of-words logistic regression, to compare with

Models read and write Hugging Face folders through hf/ (`from_pretrained`, `save_pretrained`
import it inside the method); they know nothing of runs, checkpoints or the command line.
"""
