"""Model and dataset card templates (Jinja, read by modeling_lavt.sharing.hub and scripts/prepare_refcoco.py)."""
