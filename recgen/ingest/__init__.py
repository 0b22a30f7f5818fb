"""The ingest stage: the seven KuaiRec CSVs (a folder in any KuaiRec layout, or KuaiRec.zip) into the input
tables, reloading only files whose bytes changed, with the bad-input policy of the README; and `recgen
download`, which fetches the real archive."""

from recgen.ingest.load import IngestResult, data_fingerprint, ingest
from recgen.ingest.source import DataSource, locate_data

__all__ = ["DataSource", "IngestResult", "data_fingerprint", "ingest", "locate_data"]
