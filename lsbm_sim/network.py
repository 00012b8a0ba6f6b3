"""The follow graph: builders, loaders, and the compressed arrays the engine steps on.

Edge u -> v means v follows u, so v sees what u shares. An undirected graph means mutual following. Agents are
numbered 0..n-1; a graph read from a file keeps its own node labels in `Network.node_labels`.

The engine never walks a networkx graph: it reads `followers_of` slices of a CSR array. The networkx graph a
user sees (`Network.graph`) is built from the arrays on first use, so a million-node run need not pay for it.
Generators are written for speed at a million nodes: `barabasi_albert_edges` runs networkx's own algorithm on
plain lists (the same graph as `nx.barabasi_albert_graph` for the same seed), Erdos-Renyi and stochastic block
models draw G(n, p) blocks exactly with numpy.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from lsbm_sim.errors import DataError, ScenarioError
from lsbm_sim.scenario import NetworkSpec


@dataclass
class Network:
    """A follow graph on agents 0..n-1, as edge arrays and a followers CSR.

    `source[k] -> target[k]` are the follow edges (an undirected input contributes both directions);
    `followers_of(u)` lists who sees u's shares; `in_degree[v]` is how many accounts v follows.
    """

    n: int
    source: np.ndarray
    target: np.ndarray
    directed: bool
    kind: str = "custom"
    node_labels: list | None = None
    _graph: nx.Graph | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Sort the edges by (source, target) by sorting one int64 key: equal keys are equal edges, so no
        # argsort (or a stable sort) is needed, and a million-node graph sorts in a fraction of a second.
        key = np.asarray(self.source, dtype=np.int64) * max(self.n, 1) + np.asarray(self.target, dtype=np.int64)
        key.sort()
        self.source = (key // max(self.n, 1)).astype(np.int32)
        self.target = (key % max(self.n, 1)).astype(np.int32)
        counts = np.bincount(self.source, minlength=self.n)
        self.indptr = np.zeros(self.n + 1, dtype=np.int64)
        np.cumsum(counts, out=self.indptr[1:])
        self.out_degree = counts.astype(np.int32)  # followers
        self.in_degree = np.bincount(self.target, minlength=self.n).astype(np.int32)  # accounts followed

    @property
    def followers(self) -> np.ndarray:
        """The CSR column array: followers of u are followers[indptr[u]:indptr[u+1]]."""
        return self.target

    @property
    def num_edges(self) -> int:
        """Follow edges (an undirected friendship counts twice: once each way)."""
        return len(self.source)

    def followers_of(self, u: int) -> np.ndarray:
        return self.target[self.indptr[u] : self.indptr[u + 1]]

    def following_of(self, v: int) -> np.ndarray:
        """The accounts v follows (whose shares v sees), in increasing order."""
        if not hasattr(self, "_following_indptr"):
            # The reverse CSR, built on first use: the engine never needs it, a user browsing agents may.
            order = np.argsort(self.target, kind="stable")  # stable: sources stay sorted within each target
            self._following = self.source[order]
            self._following_indptr = np.zeros(self.n + 1, dtype=np.int64)
            np.cumsum(self.in_degree, out=self._following_indptr[1:])
        return self._following[self._following_indptr[v] : self._following_indptr[v + 1]]

    def followers_of_many(self, sharers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each sharer, all its followers: (index into `sharers`, follower), concatenated, vectorised."""
        starts = self.indptr[sharers]
        lengths = self.indptr[sharers + 1] - starts
        total = int(lengths.sum())
        owner = np.repeat(np.arange(len(sharers)), lengths)
        # The k-th follower overall is at its slice's start plus its place in the slice, i.e. plus k minus the
        # number of followers of the sharers before its own.
        shift = (starts - (np.cumsum(lengths) - lengths))[owner]
        return owner, self.target[shift + np.arange(total)]

    @property
    def graph(self) -> nx.Graph:
        """The networkx graph (DiGraph if directed), with node attribute `label` for file graphs; built once."""
        if self._graph is None:
            if self.directed:
                g: nx.Graph = nx.DiGraph()
                g.add_nodes_from(range(self.n))
                g.add_edges_from(zip(self.source.tolist(), self.target.tolist()))
            else:
                g = nx.Graph()
                g.add_nodes_from(range(self.n))
                keep = self.source < self.target
                g.add_edges_from(zip(self.source[keep].tolist(), self.target[keep].tolist()))
            if self.node_labels is not None:
                nx.set_node_attributes(g, dict(enumerate(self.node_labels)), "label")
            self._graph = g
        return self._graph

    def index_of(self, label: Any) -> int | None:
        """The agent index of a node label (or of an index, for generated graphs); None if absent."""
        if self.node_labels is None:
            try:
                i = int(label)
            except (TypeError, ValueError):
                return None
            return i if 0 <= i < self.n else None
        if not hasattr(self, "_label_index"):
            self._label_index = {str(lab): i for i, lab in enumerate(self.node_labels)}
        return self._label_index.get(str(label))

    @classmethod
    def from_networkx(cls, graph: nx.Graph, kind: str = "networkx") -> Network:
        """From any networkx graph; nodes are numbered in the graph's node order and keep their labels."""
        labels = list(graph.nodes())
        index = {node: i for i, node in enumerate(labels)}
        edges = np.array([(index[u], index[v]) for u, v in graph.edges()], dtype=np.int64).reshape(-1, 2)
        src, dst = edges[:, 0], edges[:, 1]
        directed = graph.is_directed()
        if not directed:
            src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
        plain = labels == list(range(len(labels)))
        return cls(len(labels), src, dst, directed, kind=kind, node_labels=None if plain else labels)


def _undirected(n: int, u: np.ndarray, v: np.ndarray, kind: str) -> Network:
    """Mutual following: each undirected edge becomes two follow edges."""
    return Network(n, np.concatenate([u, v]), np.concatenate([v, u]), directed=False, kind=kind)


# ---------------------------------------------------------------------------------------------- generators


def barabasi_albert_edges(n: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Preferential attachment exactly as `nx.barabasi_albert_graph(n, m, seed)` (same edges), on plain lists.

    Returns (new node, existing node) pairs: each new node attaches to m distinct earlier nodes.
    """
    if not 1 <= m < n:
        raise ScenarioError(f"network.params.m: Barabasi-Albert needs 1 <= m < population size, got m={m}, n={n}")
    rng = random.Random(seed)
    choice = rng.choice
    new = [0] * m
    old = list(range(1, m + 1))  # the initial star: node 0 joined to 1..m
    repeated = [0] * m + list(range(1, m + 1))
    for source in range(m + 1, n):
        targets: set[int] = set()
        while len(targets) < m:
            targets.add(choice(repeated))
        new.extend([source] * m)
        old.extend(targets)
        repeated.extend(targets)
        repeated.extend([source] * m)
    return np.array(new, dtype=np.int32), np.array(old, dtype=np.int32)


def gnp_block_edges(
    rows: np.ndarray, cols: np.ndarray, p: float, rng: np.random.Generator, same: bool, directed: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Each possible edge between node sets `rows` and `cols` independently with probability p.

    Exact G(n, p): the number of edges is drawn from its binomial distribution, then that many distinct pairs
    uniformly (drawn with replacement and topped up until distinct), which costs O(edges) instead of O(pairs).
    `same`: rows and cols are the same set (no self-loops; undirected pairs counted once).
    """
    a, b = len(rows), len(cols)
    pairs = a * (a - 1) if same else a * b
    if same and not directed:
        pairs //= 2
    if pairs == 0 or p <= 0:
        return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32)
    m = int(rng.binomial(pairs, min(p, 1.0)))
    found = np.zeros(0, dtype=np.int64)
    while len(found) < m:
        need = int((m - len(found)) * 1.1) + 16
        i = rng.integers(0, a, size=need)
        j = rng.integers(0, b, size=need)
        if same:
            ok = i != j
            i, j = i[ok], j[ok]
            if not directed:
                i, j = np.minimum(i, j), np.maximum(i, j)
        key = np.concatenate([found, i.astype(np.int64) * b + j])
        # Keep the first occurrence of each pair in draw order, so the result does not depend on sorting.
        _, first = np.unique(key, return_index=True)
        found = key[np.sort(first)][:m]
    return rows[found // b].astype(np.int32), cols[found % b].astype(np.int32)


def watts_strogatz_edges(n: int, k: int, p: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A ring where each node links to its k nearest neighbours, each link's far end rewired with probability p
    to a uniformly chosen node (self-loops and duplicate links that rewiring would make are redrawn)."""
    if k < 2 or k % 2 or k >= n:
        raise ScenarioError(f"network.params.k: Watts-Strogatz needs an even k with 2 <= k < n, got k={k}")
    u = np.repeat(np.arange(n), k // 2)
    v = (u + np.tile(np.arange(1, k // 2 + 1), n)) % n
    rewire = np.flatnonzero(rng.random(len(u)) < p)
    existing = set(zip(np.minimum(u, v).tolist(), np.maximum(u, v).tolist()))
    for e in rewire.tolist():
        a = int(u[e])
        existing.discard((min(a, int(v[e])), max(a, int(v[e]))))
        while True:
            w = int(rng.integers(n))
            pair = (min(a, w), max(a, w))
            if w != a and pair not in existing:
                break
        existing.add(pair)
        v[e] = w
    return u.astype(np.int32), v.astype(np.int32)


def _param(spec: NetworkSpec, name: str, cast: type, default: Any = None, low: float | None = None,
           high: float | None = None) -> Any:  # fmt: skip
    raw = spec.params.get(name, default)
    if raw is None:
        raise ScenarioError(f"network.params.{name}: required for {spec.kind}")
    try:
        value = cast(raw)
    except (TypeError, ValueError):
        raise ScenarioError(f"network.params.{name}: expected a {cast.__name__}, got {raw!r}") from None
    if cast is int and float(raw) != value:
        raise ScenarioError(f"network.params.{name}: expected a whole number, got {raw!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ScenarioError(f"network.params.{name}: must lie in [{low}, {high}], got {value}")
    return value


def _check_params(spec: NetworkSpec, allowed: set[str]) -> None:
    unknown = set(spec.params) - allowed
    if unknown:
        raise ScenarioError(
            f"network.params: unknown for {spec.kind}: {sorted(unknown)} (it takes {sorted(allowed) or 'none'})"
        )


def generate_network(spec: NetworkSpec, n: int, rng: np.random.Generator, traits: pd.DataFrame | None) -> Network:
    """Build a generated graph on n agents (traits are needed by the stochastic block model)."""
    kind = spec.kind
    if kind == "barabasi_albert":
        _check_params(spec, {"m"})
        m = _param(spec, "m", int, 3, low=1)
        new, old = barabasi_albert_edges(n, m, int(rng.integers(2**31)))
        if spec.directed:  # the newcomer follows m earlier accounts: early accounts gather followers
            return Network(n, old, new, directed=True, kind=kind)
        return _undirected(n, new, old, kind)
    if kind == "watts_strogatz":
        _check_params(spec, {"k", "p"})
        if spec.directed:
            raise ScenarioError("network.directed: watts_strogatz builds an undirected graph")
        u, v = watts_strogatz_edges(n, _param(spec, "k", int, 10), _param(spec, "p", float, 0.1, 0, 1), rng)
        return _undirected(n, u, v, kind)
    if kind == "erdos_renyi":
        _check_params(spec, {"p", "mean_degree"})
        if "p" in spec.params and "mean_degree" in spec.params:
            raise ScenarioError("network.params: give erdos_renyi either p or mean_degree, not both")
        if "mean_degree" in spec.params:
            p = _param(spec, "mean_degree", float, low=0) / max(n - 1, 1)
        else:
            p = _param(spec, "p", float, low=0, high=1)
        nodes = np.arange(n)
        u, v = gnp_block_edges(nodes, nodes, p, rng, same=True, directed=spec.directed)
        return Network(n, u, v, directed=True, kind=kind) if spec.directed else _undirected(n, u, v, kind)
    if kind == "stochastic_block":
        return _stochastic_block(spec, n, rng, traits)
    raise ScenarioError(f"network.kind: {kind!r} is not a generator")  # file kinds are read elsewhere


def _stochastic_block(spec: NetworkSpec, n: int, rng: np.random.Generator, traits: pd.DataFrame | None) -> Network:
    """Blocks are the values of a persona trait (`by`); p_in within a block, p_out between: homophily."""
    _check_params(spec, {"by", "p_in", "p_out"})
    by = spec.params.get("by", "leaning")
    if traits is None or by not in traits.columns:
        known = list(traits.columns) if traits is not None else []
        raise ScenarioError(f"network.params.by: {by!r} is not a persona trait (traits: {known})")
    p_in = _param(spec, "p_in", float, low=0, high=1)
    p_out = _param(spec, "p_out", float, low=0, high=1)
    codes = pd.Categorical(traits[by]).codes
    blocks = [np.flatnonzero(codes == c) for c in range(codes.max() + 1)]
    us, vs = [], []
    for i, a in enumerate(blocks):
        for j, b in enumerate(blocks):
            if j < i and not spec.directed:
                continue
            u, v = gnp_block_edges(a, b, p_in if i == j else p_out, rng, same=i == j, directed=spec.directed)
            us.append(u)
            vs.append(v)
    u, v = np.concatenate(us), np.concatenate(vs)
    return Network(n, u, v, directed=True, kind="stochastic_block") if spec.directed else _undirected(n, u, v, "stochastic_block")


# ------------------------------------------------------------------------------------------------- loaders


def _sniff_delimiter(line: str) -> str | None:
    for candidate in ("\t", ",", ";"):
        if candidate in line:
            return candidate
    return None  # whitespace


def read_edgelist(path: Path, directed: bool, delimiter: str | None = None) -> Network:
    """An edge list: one 'source target' pair per line, separated by tabs, commas, semicolons or spaces.

    Lines starting with # or % are comments; a first line naming its columns with the usual words (source,
    target; from, to; src, dst; u, v; ...) is a header; further columns (weights, times) are ignored. Node labels may be any strings; they are sorted
    (numerically when all are integers) to give agent numbers.
    """
    if not path.is_file():
        raise DataError(f"network.path: file not found: {path}")
    sources: list[str] = []
    targets: list[str] = []
    header_checked = False
    try:
        with path.open(encoding="utf-8") as handle:
            for number, raw in enumerate(handle, start=1):
                line = raw.strip()
                if not line or line[0] in "#%":
                    continue
                if delimiter is None:
                    delimiter = _sniff_delimiter(line) or " "
                fields = next(csv.reader([line], delimiter=delimiter)) if delimiter != " " else line.split()
                fields = [f.strip() for f in fields]
                if len(fields) < 2 or not fields[0] or not fields[1]:
                    raise DataError(f"{path} line {number}: expected 'source{_show(delimiter)}target', got {line!r}")
                if not header_checked:
                    header_checked = True
                    if _looks_like_header(fields):
                        continue
                for label in fields[:2]:
                    if _is_not_a_number(label):
                        raise DataError(f"{path} line {number}: {label!r} is not a node label")
                sources.append(fields[0])
                targets.append(fields[1])
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text edge list (byte {exc.start})") from None
    if not sources:
        raise DataError(f"{path}: no edges found")
    labels = sorted(set(sources) | set(targets), key=_label_sort_key(sources + targets))
    index = {lab: i for i, lab in enumerate(labels)}
    src = np.fromiter((index[s] for s in sources), dtype=np.int64, count=len(sources))
    dst = np.fromiter((index[t] for t in targets), dtype=np.int64, count=len(targets))
    src, dst = _drop_loops_and_duplicates(src, dst, directed)
    node_labels = [int(x) for x in labels] if all(_is_int(x) for x in labels) else labels
    if node_labels == list(range(len(labels))):
        node_labels = None
    net = (
        Network(len(labels), src, dst, directed=True, kind="edgelist")
        if directed
        else _undirected(len(labels), src, dst, "edgelist")
    )
    net.node_labels = node_labels
    return net


def _show(delimiter: str) -> str:
    return {"\t": "<TAB>", " ": " "}.get(delimiter, delimiter)


def _is_not_a_number(text: str) -> bool:
    """NaN and infinities: what a spreadsheet or pandas writes for a missing id, never a real account."""
    try:
        return not math.isfinite(float(text))
    except ValueError:
        return False


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


HEADER_WORDS = frozenset(
    "source target from to src dst u v node1 node2 node_1 node_2 followee follower id1 id2 sender receiver "
    "user1 user2 user_1 user_2 head tail".split()
)


def _looks_like_header(fields: list[str]) -> bool:
    """A header names its columns with the usual words (source,target; from,to; ...); anything else is data."""
    return all(f.lower() in HEADER_WORDS for f in fields[:2])


def _label_sort_key(all_labels: list[str]):
    if all(_is_int(x) for x in all_labels):
        return int
    return str


def _drop_loops_and_duplicates(src: np.ndarray, dst: np.ndarray, directed: bool) -> tuple[np.ndarray, np.ndarray]:
    keep = src != dst
    src, dst = src[keep], dst[keep]
    if not directed:
        src, dst = np.minimum(src, dst), np.maximum(src, dst)
    n = int(max(src.max(initial=0), dst.max(initial=0))) + 1
    _, first = np.unique(src * n + dst, return_index=True)
    first.sort()
    return src[first], dst[first]


def read_graph_file(path: Path, kind: str) -> Network:
    """GraphML or GEXF via networkx; the file says whether it is directed."""
    if not path.is_file():
        raise DataError(f"network.path: file not found: {path}")
    reader = nx.read_graphml if kind == "graphml" else nx.read_gexf
    try:
        graph = reader(path)
    except Exception as exc:  # networkx raises a variety of XML and format errors; all mean "cannot read"
        position = getattr(exc, "position", None)
        where = f" line {position[0]}" if position else ""
        raise DataError(f"{path}:{where} not a valid {kind.upper()} file ({exc})") from None
    if graph.number_of_nodes() == 0:
        raise DataError(f"{path}: the graph has no nodes")
    if graph.is_multigraph():
        graph = nx.DiGraph(graph) if graph.is_directed() else nx.Graph(graph)
    graph.remove_edges_from(nx.selfloop_edges(graph))
    net = Network.from_networkx(graph, kind=kind)
    return net


def load_network(spec: NetworkSpec, path: Path) -> Network:
    """A network from the file a scenario names."""
    if spec.params:
        raise ScenarioError(f"network.params: not read for {spec.kind} (the graph comes from {path.name})")
    if spec.kind == "edgelist":
        return read_edgelist(path, spec.directed, spec.delimiter)
    return read_graph_file(path, spec.kind)
