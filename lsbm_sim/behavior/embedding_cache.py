"""Sentence embeddings kept on disk, so that a second run of a scenario starts without loading the encoder.

An entry holds the vectors of one encoding call: the exact list of texts the encoder was asked to embed, in
order, keyed by the encoder's identity and a hash of those texts. Why whole calls and not single texts: a
transformer encodes texts in padded batches, and a text's vector depends in its last bits on its neighbours in
the batch (measured on Upworthy headlines: 15% to 57% of vectors differ, by up to 2e-7, between batch
compositions). Vectors reused text by text from other runs would then make a run's event log depend on which
runs filled the cache; stored per call, a hit returns exactly what the encoder would have computed, and the
event log is the same byte for byte with the cache warm, cold or off.

Layout: `<root>/<encoder id>/<key[:2]>/<key>.emb`, each file

    magic  b"LSBMEMB1"      8 bytes (the format, and the dtype: little-endian float32)
    rows   uint64           8 bytes, little-endian
    dim    uint64           8 bytes
    sha256 32 bytes         of key, rows, dim and the vectors: a garbled or misplaced file does not match
    data   rows x dim float32

An entry that is truncated, garbled, of the wrong shape or not finite is reported in the log and treated as a
miss (recomputed and rewritten), never trusted. Writers write a temporary file beside the entry and rename it
over the entry, so concurrent writers (sweep workers) and readers only ever see whole entries.

Where: `$LSBM_CACHE/embeddings`, else `$XDG_CACHE_HOME/lsbm-sim/embeddings`, else `~/.cache/lsbm-sim/embeddings`.
`LSBM_EMBEDDING_CACHE=off` (or 0, false, no) turns the cache off. Nothing is evicted: an entry is 1.5 KB per
text (a million-agent scenario's 1,500 personas take 2.3 MB); delete the folder to empty it.

>>> import tempfile
>>> cache = EmbeddingCache(tempfile.mkdtemp())
>>> cache.put("enc", ["a", "b"], np.eye(2, dtype=np.float32))
>>> cache.get("enc", ["a", "b"])
array([[1., 0.],
       [0., 1.]], dtype=float32)
>>> cache.get("enc", ["b", "a"]) is None  # another call: another entry
True
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import struct
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MAGIC = b"LSBMEMB1"
HEADER = struct.Struct("<8sQQ32s")  # magic, rows, dim, sha256
OFF_VALUES = {"off", "0", "false", "no"}


def default_cache_root() -> Path:
    """The user-level cache folder: $LSBM_CACHE, else $XDG_CACHE_HOME/lsbm-sim, else ~/.cache/lsbm-sim."""
    if os.environ.get("LSBM_CACHE"):
        return Path(os.environ["LSBM_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "lsbm-sim"


def cache_enabled() -> bool:
    """False when LSBM_EMBEDDING_CACHE is off, 0, false or no."""
    return os.environ.get("LSBM_EMBEDDING_CACHE", "").strip().lower() not in OFF_VALUES


def encoder_identity(folder: Path, **settings: object) -> str:
    """A hash naming an encoder: its folder (every file's path, size and modification time: a reinstalled or
    edited model is a new encoder), the libraries that run it, the machine, and the encoding settings. Costs
    one stat per file, no import of the model's libraries."""
    digest = hashlib.sha256()
    folder = folder.resolve()
    digest.update(str(folder).encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"\n{path.relative_to(folder)}\t{stat.st_size}\t{stat.st_mtime_ns}".encode())
    for package in ("torch", "transformers", "sentence-transformers"):
        try:
            digest.update(f"\n{package}={metadata.version(package)}".encode())
        except metadata.PackageNotFoundError:
            pass
    # Kernels (and so the last bits of a vector) can differ between CPUs and thread counts.
    machine = (platform.machine(), os.cpu_count(), os.environ.get("OMP_NUM_THREADS"))
    digest.update(f"\n{machine}\n{sorted(settings.items())}".encode())
    return digest.hexdigest()[:32]


def texts_key(encoder_id: str, texts: Sequence[str]) -> str:
    """The entry's name: the encoder and the texts in order (each length-prefixed, so no two lists collide)."""
    digest = hashlib.sha256(encoder_id.encode())
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def _checksum(key: str, rows: int, dim: int, data: bytes) -> bytes:
    digest = hashlib.sha256(key.encode())
    digest.update(struct.pack("<QQ", rows, dim))
    digest.update(data)
    return digest.digest()


class EmbeddingCache:
    """A content-addressed store of embedding matrices under `root` (see the module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()

    @classmethod
    def default(cls) -> EmbeddingCache | None:
        """The user-level cache, or None when LSBM_EMBEDDING_CACHE turns it off."""
        return cls(default_cache_root() / "embeddings") if cache_enabled() else None

    def path(self, encoder_id: str, texts: Sequence[str]) -> Path:
        key = texts_key(encoder_id, texts)
        return self.root / encoder_id / key[:2] / f"{key}.emb"

    def get(self, encoder_id: str, texts: Sequence[str]) -> np.ndarray | None:
        """The stored vectors of exactly these texts (rows x dim float32), or None if absent or not sound."""
        path = self.path(encoder_id, texts)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("embedding cache: cannot read %s (%s); recomputing", path, exc)
            return None
        problem = self._check(blob, path.stem, len(texts))
        if problem:
            log.warning("embedding cache: %s %s; recomputing it", path, problem)
            return None
        _, rows, dim, _ = HEADER.unpack_from(blob)
        return np.frombuffer(blob, dtype="<f4", offset=HEADER.size).reshape(rows, dim).astype(np.float32)

    @staticmethod
    def _check(blob: bytes, key: str, rows_expected: int) -> str | None:
        """What is wrong with an entry's bytes, or None."""
        if len(blob) < HEADER.size:
            return f"is truncated ({len(blob)} bytes)"
        magic, rows, dim, checksum = HEADER.unpack_from(blob)
        if magic != MAGIC:
            return "is not an lsbm-sim embedding entry (bad magic)"
        if rows != rows_expected or dim == 0:
            return f"holds {rows} x {dim} vectors for {rows_expected} texts"
        if len(blob) != HEADER.size + rows * dim * 4:
            return f"is truncated or padded ({len(blob)} bytes for {rows} x {dim} float32)"
        data = blob[HEADER.size :]
        if _checksum(key, rows, dim, data) != checksum:
            return "fails its checksum"
        if not np.isfinite(np.frombuffer(data, dtype="<f4")).all():
            return "holds values that are not finite"
        return None

    def put(self, encoder_id: str, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Store the vectors of these texts: written beside the entry, then renamed over it (atomic). A cache
        that cannot be written (read-only, full disk) is reported and skipped: it costs speed, not results."""
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise ValueError(f"{vectors.shape} vectors for {len(texts)} texts")
        path = self.path(encoder_id, texts)
        rows, dim = vectors.shape
        data = vectors.tobytes()
        blob = HEADER.pack(MAGIC, rows, dim, _checksum(path.stem, rows, dim, data)) + data
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem[:8]}-", suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                handle.write(blob)
            os.replace(tmp, path)
            tmp = None
        except OSError as exc:
            log.warning("embedding cache: cannot write %s (%s); continuing without it", path, exc)
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
