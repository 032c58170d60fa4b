# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""The `refer_iou` evaluate module; a package only so that it is installed with `training` and importable."""
