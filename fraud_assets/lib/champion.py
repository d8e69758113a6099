"""The champion, hot: loaded once, followed when the registry's alias moves, swapped atomically.

Long-lived processes (the decision service, the stream consumer, the web app) hold a
``LiveChampion``. ``refresh`` looks the alias up (the light way: no MLflow import), and only
when it names another version loads that version beside the current one, checks that it can
be served here (feed semantics, feature-set version, decision tags) and swaps the reference.
A request that already holds the old model finishes with it; none waits on a load. A model
that cannot be served is refused and the previous one keeps serving; a registry that cannot be
reached keeps the loaded champion. With nothing loaded, ``current`` raises ``NotReady`` with
the reason, never a guess.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fraud_assets.lib import registry
from fraud_assets.lib.features import IncompatibleModel
from fraud_assets.lib.serving import ServingModel, ensure_servable

log = logging.getLogger(__name__)


class NotReady(RuntimeError):
    """No servable champion is loaded; the message says why."""


@dataclass(frozen=True)
class Loaded:
    """A champion ready to serve: the model and what the registry says of it."""

    model: ServingModel
    info: registry.RegisteredModel
    loaded_at: float  # time.time()


@dataclass(frozen=True)
class Status:
    """What the holder knows now, for probes and metrics."""

    ready: bool
    reason: str
    version: str | None
    refused_version: str | None
    checked_at: float | None  # time.time() of the last successful look at the registry
    # the latest change of version: from reading the registry to the swap (or the refusal)
    load_seconds: float | None = None


class LiveChampion:
    """Holds the servable champion of ``model_name`` for ``semantics`` (see the module)."""

    def __init__(
        self,
        tracking_uri: str,
        model_name: str,
        semantics: str,
        cache_dir: Path,
        prepare: Callable[[ServingModel], ServingModel] | None = None,
    ) -> None:
        self.tracking_uri, self.model_name = tracking_uri, model_name
        self.semantics, self.cache_dir = semantics, cache_dir
        self._prepare = prepare or (lambda model: model)
        self._loaded: Loaded | None = None
        self._lock = threading.Lock()  # one refresh at a time; serving never takes it
        self._reason = "the champion has not been looked up yet"
        self._refused: str | None = None
        self._checked_at: float | None = None
        self._load_seconds: float | None = None

    def current(self) -> Loaded:
        """The champion to serve now; NotReady (with why) when none is loaded."""
        loaded = self._loaded
        if loaded is None:
            raise NotReady(self._reason)
        return loaded

    def status(self) -> Status:
        loaded = self._loaded
        return Status(
            ready=loaded is not None,
            reason=self._reason,
            version=loaded.info.version if loaded else None,
            refused_version=self._refused,
            checked_at=self._checked_at,
            load_seconds=self._load_seconds,
        )

    def refresh(self) -> bool:
        """Follow the alias once; True when another version was swapped in. Never raises:
        whatever goes wrong is the status's reason, and the loaded champion stays."""
        with self._lock:
            try:
                return self._refresh()
            except Exception as exc:  # noqa: BLE001 - a refresh must never take serving down
                self._reason = f"refresh failed: {type(exc).__name__}: {exc}"[:500]
                log.exception("champion refresh failed; serving what is loaded")
                return False

    def _refresh(self) -> bool:
        started = time.perf_counter()
        try:
            pointer = registry.champion_pointer(self.tracking_uri, self.model_name)
        except registry.RegistryUnavailable as exc:
            self._reason = self._keeping(f"registry unavailable: {exc}")
            return False
        except IncompatibleModel as exc:
            return self._refuse("the alias's version", exc)
        self._checked_at = time.time()
        if pointer is None:
            self._reason = self._keeping(f"the registry has no '{self.model_name}@champion'")
            return False
        loaded = self._loaded
        if loaded is not None and loaded.info.version == pointer.version:
            self._reason, self._refused = f"serving v{pointer.version}", None
            return False
        if self._refused == pointer.version:
            return False  # refused once already: the same version is not loaded again
        try:
            return self._load(pointer)
        finally:
            self._load_seconds = time.perf_counter() - started

    def _load(self, pointer: registry.RegisteredModel) -> bool:
        try:
            digest = pointer.tags.get(registry.DIGEST_TAG)
            pipeline = registry.cached_pipeline(
                self.cache_dir, self.tracking_uri, self.model_name, pointer.version, digest
            )
            model = registry.serving_model(pointer, pipeline)
            ensure_servable(model, self.semantics)
            model = self._prepare(model)
        except IncompatibleModel as exc:
            return self._refuse(f"v{pointer.version}", exc, pointer.version)
        self._loaded = Loaded(model, pointer, time.time())  # the swap: one reference
        self._reason, self._refused = f"serving v{pointer.version}", None
        log.info("serving champion v%s", pointer.version)
        return True

    def _refuse(self, what: str, exc: Exception, version: str | None = None) -> bool:
        self._refused = version or "unknown"
        self._reason = self._keeping(f"{what} refused: {exc}")
        log.error("champion %s refused: %s", what, exc)
        return False

    def _keeping(self, why: str) -> str:
        loaded = self._loaded
        return f"{why}; still serving v{loaded.info.version}" if loaded else why
