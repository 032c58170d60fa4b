# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Sharing a model on the Hub (hub.py) and pictures of its answers (visualization.py)."""
