"""The models: a registry of families (recgen's hybrid two-tower model, the seed notebook's network), the
Keras base they share, the baselines, and saved models (train, or reload after checking the file's hash).

Importing this package does not load TensorFlow; its names below come from `registry`, imported on first use.
"""

import os

# Before any family imports TensorFlow: its start-up chatter is not for cron logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__all__ = ["FAMILIES", "Family", "family", "load_model"]


def __getattr__(name: str):
    if name in __all__:
        from recgen.models import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
