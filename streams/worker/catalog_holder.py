"""The agency catalog, reloaded when its files change (no restart needed).

``maybe_reload`` is cheap (two ``stat`` calls) and blocking only for the reload itself (two small
CSV files); the engines call it on the catalog's schedule, between batches. A reload never
changes a batch already being decoded: that batch was given the codes of its time.
"""

from __future__ import annotations

import logging
from pathlib import Path

from schemas.catalog import Catalog, bundled_dir, load_catalog

log = logging.getLogger("parwatch.worker")


class CatalogHolder:
    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.catalog: Catalog = load_catalog(directory)
        self._mtime = self._stamp()

    @property
    def codes(self) -> frozenset[str]:
        """The agency codes: what decoding needs of the catalog (cheap to pickle)."""
        return frozenset(self.catalog.agencies)

    @property
    def version(self) -> float:
        """The catalog files' newest modification time (epoch seconds): moves on a reload."""
        return self._mtime

    def _stamp(self) -> float:
        d = self.directory or bundled_dir()
        return max((d / f).stat().st_mtime for f in ("agencies.csv", "procedures.csv"))

    def maybe_reload(self) -> bool:
        """Reload if the files changed since the last load; says whether it did."""
        stamp = self._stamp()
        if stamp == self._mtime:
            return False
        self.catalog, self._mtime = load_catalog(self.directory), stamp
        log.info("agency catalog reloaded: %d agencies", len(self.catalog.agencies))
        return True
