"""Training samples: the builder (Llama 3 template, speech profiles, labels, padding), tokenizers,
rewriting a dataset's samples (retokenize) and curriculum splits."""
