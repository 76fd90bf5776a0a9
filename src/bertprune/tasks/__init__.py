"""Tasks: what the training loop needs to know about GLUE, masked-LM pre-training (and SQuAD later)."""
