# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Where a model's weights come from, besides `from_pretrained`: original LAVT checkpoints (conversion.py) and the
initialisation for training from a pretrained Swin and text encoder (pretrained.py). Not carried by Hub repos."""
