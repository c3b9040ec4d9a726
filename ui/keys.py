"""API keys for ``byline serve`` on an address other than loopback.

    byline keys create laptop            # read-only: ask, chat completions, search, list (prints the key once)
    byline keys create ops --admin       # also ingest and delete
    byline keys list | byline keys revoke laptop

Only a SHA-256 hash of each key is kept, in ``<data_dir>/api_keys.json`` (beside the index): a key is
32 random bytes, so a plain hash is enough, and a leaked file grants nothing. A running server
re-reads the file when it changes, so a revoked key stops working at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from rag.errors import ConfigError

PREFIX = "byl_"
READ, ADMIN = "read", "admin"


@dataclass
class KeyInfo:
    id: str
    name: str
    role: str  # READ or ADMIN
    created: str
    revoked: str | None = None  # when, or None while the key works
    hash: str = ""

    @property
    def active(self) -> bool:
        return self.revoked is None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class KeyStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._keys: list[KeyInfo] = []
        self._mtime: float | None = None

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> "KeyStore":
        return cls(Path(data_dir) / "api_keys.json")

    def _load(self) -> list[KeyInfo]:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._keys, self._mtime = [], None
            return self._keys
        if mtime != self._mtime:
            try:
                raw = json.loads(self.path.read_text(encoding="utf-8"))
                self._keys = [KeyInfo(**k) for k in raw.get("keys", [])]
            except (ValueError, TypeError, AttributeError) as exc:
                raise ConfigError(f"the API key file {self.path} is damaged ({exc}); remove it and create the keys again") from None
            self._mtime = mtime
        return self._keys

    def _save(self, keys: list[KeyInfo]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # readable by its owner only
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"keys": [asdict(k) for k in keys]}, fh, indent=2)
        os.replace(tmp, self.path)
        self._mtime = None  # re-read on next use

    def create(self, name: str, role: str = READ) -> tuple[KeyInfo, str]:
        """A new key: its record and the secret (shown once, never stored)."""
        name = (name or "").strip()
        if not name or len(name) > 100:
            raise ConfigError("a key needs a name of 1 to 100 characters (who or what uses it)")
        if role not in (READ, ADMIN):
            raise ConfigError(f"unknown key role {role!r}; use {READ!r} or {ADMIN!r}")
        with self._lock:
            keys = list(self._load())
            if any(k.name == name and k.active for k in keys):
                raise ConfigError(f"there is already an active key named {name!r}; revoke it first or pick another name")
            token = PREFIX + secrets.token_urlsafe(32)
            info = KeyInfo(id=secrets.token_hex(4), name=name, role=role, hash=_digest(token),
                           created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
            self._save([*keys, info])
        return info, token

    def list(self) -> list[KeyInfo]:
        with self._lock:
            return list(self._load())

    def active(self) -> list[KeyInfo]:
        return [k for k in self.list() if k.active]

    def revoke(self, id_or_name: str) -> KeyInfo:
        with self._lock:
            keys = list(self._load())
            match = [k for k in keys if k.active and id_or_name in (k.id, k.name)]
            if not match:
                raise ConfigError(f"no active key with id or name {id_or_name!r} (see `byline keys list`)")
            for k in match:
                k.revoked = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            self._save(keys)
        return match[0]

    def verify(self, token: str | None) -> KeyInfo | None:
        """The active key this secret belongs to, or None."""
        if not token or not token.startswith(PREFIX):
            return None
        digest = _digest(token)
        with self._lock:
            keys = self._load()
        found = None
        for k in keys:  # compared in constant time, every key, so timing tells nothing
            if hmac.compare_digest(k.hash, digest) and k.active:
                found = k
        return found
