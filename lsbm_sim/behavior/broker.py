"""The broker: one behavior-model call per step, for the questions it has not answered before.

Every exposure of a step is one row of a QueryBatch. The broker finds the distinct questions among them (rows
equal on the columns the model `depends_on`), answers what it can from its memory cache and, for models with a
`fingerprint`, from a persistent SQLite cache shared across runs, and sends the rest to the model in one call.
Answers are kept as float32 whichever way they were obtained, so a cached answer and a fresh one sample alike
and the event log does not depend on the cache state.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lsbm_sim.behavior.base import BehaviorModel, QueryBatch, check_probabilities
from lsbm_sim.errors import LsbmError

MEMORY_CACHE_LIMIT = 2_000_000
"""Distinct questions kept in memory; past this the broker still answers, it just stops remembering."""


@dataclass
class BrokerStats:
    """What the broker did: decisions asked, distinct questions, where their answers came from, time spent."""

    decisions: int = 0
    unique_queries: int = 0
    memory_hits: int = 0
    disk_hits: int = 0
    model_rows: int = 0
    model_calls: int = 0
    model_seconds: float = 0.0
    broker_seconds: float = 0.0

    def as_dict(self) -> dict[str, float]:
        d = asdict(self)
        d["cache_hits"] = self.memory_hits + self.disk_hits
        d["overhead_seconds"] = max(self.broker_seconds - self.model_seconds, 0.0)
        return d


class Broker:
    """Batches, de-duplicates and caches questions to a behavior model.

    >>> from lsbm_sim.behavior.classic import ConstantModel
    >>> broker = Broker(ConstantModel({"ignore": 0.9, "share": 0.1}, reactions=("ignore", "share")))
    """

    def __init__(self, model: BehaviorModel, cache_path: Path | str | None = None):
        self.model = model
        self.reactions = tuple(model.reactions)
        self.depends_on = tuple(getattr(model, "depends_on", ()))
        self.stats = BrokerStats()
        self._memory = AnswerMemory(len(self.reactions))
        fingerprint = getattr(model, "fingerprint", None)
        self._disk = PersistentCache(cache_path, fingerprint) if cache_path is not None and fingerprint else None

    def decide(self, batch: QueryBatch) -> np.ndarray:
        """Probabilities (len(batch) x len(reactions), float32) for every row of the batch."""
        started = time.perf_counter()
        n = len(batch)
        self.stats.decisions += n
        if n == 0:
            return np.zeros((0, len(self.reactions)), dtype=np.float32)
        columns = batch.key_columns(self.depends_on)
        first, inverse = distinct_rows(columns)
        distinct = columns[first]
        self.stats.unique_queries += len(first)

        found, answers = self._memory.lookup(distinct)
        missing = np.flatnonzero(~found)
        self.stats.memory_hits += len(first) - len(missing)

        if len(missing) and self._disk is not None:
            queries = batch.take(first[missing])
            cache_keys = [self.model.cache_key(queries.query(i)) for i in range(len(queries))]
            stored = self._disk.get_many(cache_keys)
            on_disk = np.array([ck in stored for ck in cache_keys], dtype=bool)
            if on_disk.any():
                hits = missing[on_disk]
                answers[hits] = np.stack([stored[ck] for ck, hit in zip(cache_keys, on_disk) if hit])
                self._memory.add(distinct[hits], answers[hits])
            self.stats.disk_hits += int(on_disk.sum())
            missing = missing[~on_disk]

        if len(missing):
            rows = first[missing]
            asked = batch.take(rows)
            t_model = time.perf_counter()
            probs = self.model.predict_proba(asked)
            self.stats.model_seconds += time.perf_counter() - t_model
            probs = check_probabilities(probs, len(rows), self.reactions, type(self.model).__name__).astype(np.float32)
            self.stats.model_calls += 1
            self.stats.model_rows += len(rows)
            answers[missing] = probs
            self._memory.add(distinct[missing], probs)
            if self._disk is not None:
                self._disk.put_many([self.model.cache_key(asked.query(i)) for i in range(len(asked))], probs)

        self.stats.broker_seconds += time.perf_counter() - started
        return answers[inverse]

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()


class AnswerMemory:
    """Answers kept in memory and looked up for a whole step's questions at once, with no Python per question.

    A question is a row of int64 codes. Each row is hashed to one uint64 (a fixed multiply-xor mix); rows, hashes
    and answers are kept in runs sorted by hash and found by binary search. A hit needs the whole row to match,
    so two questions that share a hash never share an answer (the later one is just not remembered). Each
    step's new answers form a new run; runs are merged when there are several, so a look-up searches a few
    sorted arrays.
    """

    MAX_RUNS = 6

    def __init__(self, n_reactions: int):
        self.n_reactions = n_reactions
        self._runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (hashes, rows, answers), by hash
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def lookup(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each row: whether an answer is remembered, and the answers (undefined where not)."""
        found = np.zeros(len(rows), dtype=bool)
        answers = np.empty((len(rows), self.n_reactions), dtype=np.float32)
        if not self._runs or len(rows) == 0:
            return found, answers
        hashes = hash_rows(rows)
        for run_hashes, run_rows, run_answers in self._runs:
            at = np.minimum(np.searchsorted(run_hashes, hashes), len(run_hashes) - 1)
            hit = ~found & (run_hashes[at] == hashes) & (run_rows[at] == rows).all(axis=1)
            answers[hit] = run_answers[at[hit]]
            found |= hit
        return found, answers

    def add(self, rows: np.ndarray, answers: np.ndarray) -> None:
        room = MEMORY_CACHE_LIMIT - self.size
        if room <= 0 or len(rows) == 0:
            return
        rows, answers = rows[:room], np.asarray(answers[:room], dtype=np.float32)
        hashes = hash_rows(rows)
        order = np.argsort(hashes, kind="stable")
        self._runs.append((hashes[order], rows[order], answers[order]))
        self.size += len(rows)
        if len(self._runs) > self.MAX_RUNS:
            merged = [np.concatenate(parts) for parts in zip(*self._runs)]
            order = np.argsort(merged[0], kind="stable")
            self._runs = [(merged[0][order], merged[1][order], merged[2][order])]


# Odd 64-bit multipliers for the row hash (fixed, so a row hashes alike in every run of the program).
_HASH_MULTIPLIERS = np.array(
    [0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93, 0xC2B2AE3D27D4EB4F,
     0x165667B19E3779F9, 0x27D4EB2F165667C5, 0xFF51AFD7ED558CCD],
    dtype=np.uint64,
)  # fmt: skip


def hash_rows(rows: np.ndarray) -> np.ndarray:
    """One uint64 per row of an int64 matrix (multiply-xor mixing, wrapping arithmetic)."""
    h = np.full(len(rows), 0x243F6A8885A308D3, dtype=np.uint64)
    for j in range(rows.shape[1]):
        h ^= rows[:, j].astype(np.uint64)
        h *= _HASH_MULTIPLIERS[j % len(_HASH_MULTIPLIERS)]
        h ^= h >> np.uint64(31)
    return h


def distinct_rows(columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For an int64 matrix: the index of each distinct row's first occurrence, and each row's distinct index.

    Rows are packed into one int64 by mixed radix when the columns' ranges allow it (the common case, much
    faster than comparing whole rows).
    """
    n, k = columns.shape
    if k == 0:
        return np.zeros(1, dtype=np.int64), np.zeros(n, dtype=np.int64)
    low = columns.min(axis=0)
    span = columns.max(axis=0) - low + 1
    if float(np.prod(span.astype(np.float64))) < 2**62:
        packed = np.zeros(n, dtype=np.int64)
        for c in range(k):
            packed = packed * span[c] + (columns[:, c] - low[c])
        _, first, inverse = np.unique(packed, return_index=True, return_inverse=True)
    else:
        _, first, inverse = np.unique(columns, axis=0, return_index=True, return_inverse=True)
    return first, inverse.reshape(-1)


class PersistentCache:
    """Answers kept in SQLite, keyed by (model fingerprint, sha256 of the query's cache key)."""

    def __init__(self, path: Path | str, fingerprint: str):
        self.path = Path(path)
        self.fingerprint = fingerprint
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS answers (fingerprint TEXT, key BLOB, probs BLOB, PRIMARY KEY (fingerprint, key))"
            )
        except (OSError, sqlite3.Error) as exc:
            raise LsbmError(f"behavior.cache: cannot open {self.path} ({exc})") from None

    @staticmethod
    def _digest(key: str) -> bytes:
        return hashlib.sha256(key.encode("utf-8")).digest()

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        by_digest = {self._digest(k): k for k in keys}
        digests = list(by_digest)
        for start in range(0, len(digests), 500):
            chunk = digests[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for digest, blob in self._db.execute(
                f"SELECT key, probs FROM answers WHERE fingerprint = ? AND key IN ({marks})", [self.fingerprint, *chunk]
            ):
                found[by_digest[digest]] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, keys: list[str], probs: np.ndarray) -> None:
        rows = [(self.fingerprint, self._digest(k), np.asarray(p, dtype=np.float32).tobytes()) for k, p in zip(keys, probs)]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?)", rows)

    def close(self) -> None:
        self._db.close()
