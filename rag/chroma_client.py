"""Chroma clients: opening them (a folder or a server), their errors, and the per-process registry.

``rag.store.Store`` is the interface the rest of Byline uses; this module is its plumbing.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

from rag.config import Settings
from rag.errors import StoreError


# --- addresses and errors ------------------------------------------------------------------------
def server_address(settings: Settings) -> tuple[str, int, bool]:
    if settings.chroma_url:
        from urllib.parse import urlparse

        u = urlparse(settings.chroma_url)
        return u.hostname or "127.0.0.1", u.port or (443 if u.scheme == "https" else 8000), u.scheme == "https"
    return settings.chroma_host or "127.0.0.1", settings.chroma_port, False


def client_key(settings: Settings) -> str:
    """What identifies one Chroma (a folder, or a server plus token): the registry's key."""
    if settings.uses_server:
        host, port, ssl = server_address(settings)
        return f"{'https' if ssl else 'http'}://{host}:{port}|{settings.chroma_token or ''}"
    return str(settings.resolved_chroma_path.resolve())


def unreachable(settings: Settings, exc: BaseException | None = None) -> StoreError:
    host, port, ssl = server_address(settings)
    url = f"{'https' if ssl else 'http'}://{host}:{port}"
    why = _short_reason(exc) if exc is not None else "no answer"
    return StoreError(
        f"Cannot reach the Chroma server at {url} ({why}). Start it (e.g. `chroma run --path DIR --host {host} --port {port}`), "
        "check BYLINE_CHROMA_URL / BYLINE_CHROMA_HOST / BYLINE_CHROMA_PORT, or unset them to use a local Chroma folder."
    )


def _short_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    low = text.lower()
    if "401" in low or "403" in low or "unauthorized" in low or "forbidden" in low or "authenticat" in low:
        return "authentication failed: check BYLINE_CHROMA_TOKEN"
    if "refused" in low or "could not connect" in low or "connecterror" in low or "connect" in low:
        return "connection refused"
    if "timed out" in low or "timeout" in low:
        return "timed out"
    return text[:200]


def is_connection_error(exc: BaseException) -> bool:
    try:
        import httpx
    except ImportError:  # pragma: no cover
        return isinstance(exc, (ConnectionError, TimeoutError))
    if isinstance(exc, (httpx.TransportError, ConnectionError, TimeoutError)):
        return True
    return "could not connect to a chroma server" in str(exc).lower()


def open_client(settings: Settings) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.uses_server:
        host, port, ssl = server_address(settings)
        headers = {"Authorization": f"Bearer {settings.chroma_token}"} if settings.chroma_token else None
        try:
            client = chromadb.HttpClient(host=host, port=port, ssl=ssl, headers=headers, settings=chroma_settings)
            client.heartbeat()
        except Exception as exc:  # noqa: BLE001 - any failure here means "the server is not usable"
            raise unreachable(settings, exc) from None
        return client
    path = settings.resolved_chroma_path
    try:
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
    except Exception as exc:  # noqa: BLE001
        raise StoreError(f"Cannot open the Chroma folder {path}: {exc}") from None


# --- the per-process registry --------------------------------------------------------------------
class _ClientRegistry:
    """The Chroma clients of this process, one per folder or server, and what goes with each.

    Why per process: Chroma itself keeps one ``System`` per folder per process
    (``SharedSystemClient``), so every ``Store`` on one folder in a process shares one client
    anyway; holding it here makes that explicit. Per key (``client_key``) it holds:

    - the client;
    - a generation number, bumped whenever that client is replaced or dropped, so a ``Store``
      holding collections of the old client knows to reopen them;
    - the version token the current client is known to be up to date with (an embedded client
      does not see vectors another process wrote until it is reopened; see ``Store.version``);
    - the write lock's in-process part: a re-entrant thread lock per folder, and per thread how
      deep it is held (the file lock that excludes other processes is taken once, at depth 0).
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._clients: dict[str, Any] = {}
        self._generation: dict[str, int] = defaultdict(int)
        self._known_token: dict[str, str] = {}
        self._write_locks: dict[str, threading.RLock] = defaultdict(threading.RLock)
        self._held = threading.local()

    # clients
    def client(self, settings: Settings, key: str) -> Any:
        with self._lock:
            if key not in self._clients:
                self._clients[key] = open_client(settings)
                self._generation[key] += 1
                self._known_token.pop(key, None)
            return self._clients[key]

    def generation(self, key: str) -> int:
        with self._lock:
            return self._generation[key]

    def is_current(self, key: str, generation: int) -> bool:
        with self._lock:
            return generation == self._generation[key] and key in self._clients

    def reopen_embedded(self, settings: Settings, key: str) -> None:
        """Replace the cached embedded client by a fresh one.

        An embedded Chroma client keeps its HNSW index in memory and does not see vectors another
        process added (its counts and metadata are fresh, its queries are not) until it writes itself
        or is reopened. The old client is dropped, not stopped, so a query running in another thread
        on it finishes; it is freed when the last reference goes.
        """
        from chromadb.api.shared_system_client import SharedSystemClient

        with self._lock:
            old = self._clients.pop(key, None)
            ident = str(settings.resolved_chroma_path)
            if old is not None:
                ident = getattr(old, "_identifier", ident)
            SharedSystemClient._identifier_to_system.pop(ident, None)
            SharedSystemClient._identifier_to_refcount.pop(ident, None)
            self._clients[key] = open_client(settings)
            self._generation[key] += 1

    def release(self, key: str) -> None:
        """Drop and close the client of ``key`` (its folder can then be deleted); Stores reopen on next use."""
        with self._lock:
            client = self._clients.pop(key, None)
            self._generation[key] += 1
            self._known_token.pop(key, None)
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def forget_all(self) -> None:
        """Drop every cached client, as a fresh process would start (tests); open Stores reconnect on next use."""
        with self._lock:
            for key in list(self._clients):
                self._generation[key] += 1
            self._clients.clear()
            self._known_token.clear()
        with contextlib.suppress(Exception):
            from chromadb.api.shared_system_client import SharedSystemClient

            SharedSystemClient.clear_system_cache()

    # version tokens
    def known_token(self, key: str) -> str | None:
        with self._lock:
            return self._known_token.get(key)

    def set_token(self, key: str, token: str, *, if_unknown: bool = False) -> None:
        with self._lock:
            if if_unknown:
                self._known_token.setdefault(key, token)
            else:
                self._known_token[key] = token

    # write lock
    @contextlib.contextmanager
    def write_lock(self, key: str, lock_file: Path | None) -> Iterator[int]:
        """Re-entrant across this process's threads; with ``lock_file`` also across processes (flock).
        Yields how deep this thread now holds it (1: the outermost hold)."""
        with self._lock:
            rlock = self._write_locks[key]
        with rlock:
            depth: dict[str, int] = getattr(self._held, "depth", None) or {}
            self._held.depth = depth
            if lock_file is None or depth.get(key, 0) > 0:
                depth[key] = depth.get(key, 0) + 1
                try:
                    yield depth[key]
                finally:
                    depth[key] -= 1
                return
            lock_file.parent.mkdir(parents=True, exist_ok=True)
            with open(lock_file, "a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                depth[key] = 1
                try:
                    yield 1
                finally:
                    depth[key] = 0
                    fcntl.flock(fh, fcntl.LOCK_UN)


CLIENTS = _ClientRegistry()
