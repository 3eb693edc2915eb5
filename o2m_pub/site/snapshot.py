"""The manifest's tables as the last build committed them, parsed, and kept between
the builds of a `Builder` session."""

from __future__ import annotations

import gc
import json

from o2m_pub.site.manifest import Manifest


def _apply(old: dict, changes: dict) -> dict:
    """`old` with `changes` applied as Manifest.commit applies them (None deletes)."""
    new = dict(old)
    for key, value in changes.items():
        if value is None:
            new.pop(key, None)
        else:
            new[key] = value
    return new


class ManifestSnapshot:
    """The manifest's tables as the last build committed them, parsed. A one-off build
    reads them once; a `Builder` keeps them and applies each build's own commit, so a
    rebuild does not parse 10,000 records again. Never mutated: each build makes a new one."""

    def __init__(self, manifest: Manifest, *, freeze: bool = False) -> None:
        """Read the tables. Some 200,000 objects, none in a cycle: made with the garbage
        collector on, they set off collection after collection, each walking all made so
        far. `freeze` then moves everything alive out of the collector's later walks too
        (gc.freeze: see `Builder`'s `one_off`; `o2m watch` freezes between builds)."""
        self.manifest = manifest
        collecting = gc.isenabled()
        gc.disable()
        try:
            self.sources, self.outputs = manifest.planning_state()
            self.files = manifest.files()
        finally:
            if freeze:
                gc.freeze()
            if collecting:
                gc.enable()
        self._feeds: dict | None = None
        self._sealed: dict | None = None

    def feeds(self) -> dict:
        """Reader -> private_feeds.FeedState (the crypto is imported only when there
        are some)."""
        if self._feeds is None:
            raw = self.manifest.feed_states()
            if raw:
                from o2m_pub.friends.private_feeds import FeedState
                self._feeds = {k: FeedState.from_json(v) for k, v in raw.items()}
            else:
                self._feeds = {}
        return self._feeds

    def sealed(self) -> dict[str, dict]:
        if self._sealed is None:
            self._sealed = {k: json.loads(v) for k, v in self.manifest.sealed().items()}
        return self._sealed

    def after(self, *, sources: dict, outputs: dict, files: dict, feeds: dict,
              sealed: dict) -> "ManifestSnapshot":
        """The snapshot once these changes (the arguments of Manifest.commit, with the
        feeds' states and sealed objects as objects, not JSON) are in."""
        new = object.__new__(ManifestSnapshot)
        new.manifest = self.manifest
        new.sources = _apply(self.sources, sources)
        new.outputs = _apply(self.outputs, outputs)
        new.files = _apply(self.files, files)
        new._feeds = new._sealed = None  # loaded from the database when next needed
        if self._feeds is not None:
            new._feeds = _apply(self._feeds, feeds)
        if self._sealed is not None:
            new._sealed = _apply(self._sealed, sealed)
        return new
