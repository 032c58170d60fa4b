# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""The installed home of the command-line, training, data and evaluation code: `training/`, `scripts/` and
`hub_cards/` install as `lavt_hf.training`, `lavt_hf.scripts` and `lavt_hf.hub_cards` (docs/design.md)."""
