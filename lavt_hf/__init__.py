# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""The installed home of this project's training, data, evaluation and command-line code (docs/design.md).

In the repository they are the top-level folders `training/`, `scripts/` and `hub_cards/`; installed, they are
`lavt_hf.training`, `lavt_hf.scripts` and `lavt_hf.hub_cards`, so that installing the package adds no generic
top-level names (a user's own `training` package stays theirs). The model itself is `modeling_lavt`.
"""

from pathlib import Path

_REPOSITORY = Path(__file__).resolve().parents[1]
# In a checkout (or an editable install of it) the three folders sit beside this one: make them this package's
# subpackages. An installed wheel has them inside this folder and needs nothing.
if not (Path(__file__).parent / "training").is_dir() and (_REPOSITORY / "training").is_dir():
    __path__.append(str(_REPOSITORY))  # noqa: F821 (the package's own search path)
