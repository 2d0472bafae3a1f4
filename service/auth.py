"""API keys with scopes, and a per-client rate limit. No web framework here: ``service.api.auth`` applies them.

Keys are known only by their SHA-256, from the settings and, when set, a JSON file that is re-read whenever
it changes, so a key is added, rotated or revoked without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass

from pydantic import TypeAdapter, ValidationError

from service.config import ApiKey, AuthSettings, Scope, ServerSettings
from service.errors import Forbidden, RateLimited, Unauthorized

logger = logging.getLogger(__name__)
_KEY_LIST = TypeAdapter(list[ApiKey])


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who sent a request: a key's name, or ``anonymous``; the client id the rate limit counts by."""

    name: str
    scopes: frozenset[Scope]
    client: str


class KeyRing:
    def __init__(self, auth: AuthSettings, server: ServerSettings) -> None:
        self._static = list(auth.keys)
        self._file = auth.keys_file
        self._file_keys: list[ApiKey] = []
        self._file_stamp: tuple[float, int] | None = None
        self._lock = threading.Lock()
        self._anonymous = None if auth.anonymous_scopes is None else frozenset(auth.anonymous_scopes)
        self._loopback_only = server.loopback_only
        self._reload()
        if not server.loopback_only and not self._keys() and Scope.write not in self.anonymous:
            logger.warning("listening on %s without API keys: the gallery is read-only (set SHITU_AUTH__KEYS)",
                           server.host)

    @property
    def anonymous(self) -> frozenset[Scope]:
        """A request without a key may do everything only on loopback with no keys configured; else only read."""
        if self._anonymous is not None:
            return self._anonymous
        return frozenset(Scope) if self._loopback_only and not self._keys() else frozenset({Scope.read})

    def _keys(self) -> list[ApiKey]:
        return self._static + self._file_keys

    def _reload(self) -> None:
        """Re-read the keys file when its mtime or size changed; a broken file keeps the last good keys."""
        if self._file is None:
            return
        try:
            status = self._file.stat()
            stamp = (status.st_mtime, status.st_size)
            if stamp == self._file_stamp:
                return
            keys = _KEY_LIST.validate_python(json.loads(self._file.read_text(encoding="utf-8")))
        except (OSError, ValueError, ValidationError) as error:
            logger.error("API keys file %s not loaded (%s); keeping %d keys", self._file, type(error).__name__,
                         len(self._file_keys))
            return
        self._file_keys, self._file_stamp = keys, stamp
        logger.info("API keys file %s: %d keys", self._file, len(keys))

    def identify(self, token: str | None, client: str) -> Principal:
        with self._lock:
            self._reload()
            keys = self._keys()
        if token is None:
            return Principal("anonymous", self.anonymous, client)
        digest = key_digest(token)
        for key in keys:
            if hmac.compare_digest(key.sha256, digest):
                return Principal(key.name, frozenset(key.scopes), f"key:{key.name}")
        raise Unauthorized("the API key is not valid")

    @staticmethod
    def require(principal: Principal, scope: Scope) -> None:
        if scope in principal.scopes:
            return
        if principal.name == "anonymous":
            raise Unauthorized(f"this needs an API key with the {scope.value} scope "
                               "(Authorization: Bearer <key> or X-API-Key)", scope=scope.value)
        raise Forbidden(f"the key {principal.name!r} lacks the {scope.value} scope", scope=scope.value)


class RateLimiter:
    """A token bucket per client: ``burst`` requests at once, then ``rate`` a second."""

    def __init__(self, rate: float | None, burst: int, *, max_clients: int = 100_000) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> None:
        if self._rate is None:
            return
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (self._burst, now))
            tokens = min(self._burst, tokens + (now - last) * self._rate)
            if tokens < 1.0:
                self._buckets[client] = (tokens, now)
                wait = max(1, int((1.0 - tokens) / self._rate + 0.999))
                raise RateLimited(f"more than {self._rate:g} requests a second from this client; retry in {wait} s",
                                  retry_after_s=wait)
            if len(self._buckets) >= self._max_clients and client not in self._buckets:
                self._forget_full_buckets(now)
            self._buckets[client] = (tokens - 1.0, now)

    def _forget_full_buckets(self, now: float) -> None:
        """Bounded memory: a client whose bucket has refilled is the same as one never seen."""
        for client, (tokens, last) in list(self._buckets.items()):
            if tokens + (now - last) * (self._rate or 0.0) >= self._burst:
                del self._buckets[client]


