"""Training code of lavt-hf: data, loop, evaluation and recipes."""
