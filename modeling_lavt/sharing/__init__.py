# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Showing and sharing a model: pushing it to the Hub with remote code and a card (hub.py), and pictures of its
answers (visualization.py). Not carried by Hub repos."""
