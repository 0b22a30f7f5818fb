"""recgen: nightly batch recommendations for KuaiRec-style short-video data, in SQLite."""

__version__ = "0.1.0"
