"""Datasets: GLUE now; masked-LM text and SQuAD slot in beside it."""
