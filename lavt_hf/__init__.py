# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""The installed home of this project's command-line, training, data and evaluation code (docs/design.md).

In the repository `training/`, `scripts/` and `hub_cards/` are top-level folders; `pyproject.toml` installs them
as `lavt_hf.training`, `lavt_hf.scripts` and `lavt_hf.hub_cards` (a wheel copies them here, an editable install
maps them), so installing adds no generic top-level names. The model itself is `modeling_lavt`.
"""
