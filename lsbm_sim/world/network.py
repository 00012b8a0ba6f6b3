"""The follow graph: generators, and the compressed arrays the engine steps on (files: `graph_files`).

Edge u -> v means v follows u, so v sees what u shares. An undirected graph means mutual following. Agents are
numbered 0..n-1; a graph read from a file keeps its own node labels in `Network.node_labels`.

The engine never walks a networkx graph: it reads `followers_of` slices of a CSR array. The networkx graph a
user sees (`Network.graph`) is built from the arrays on first use, so a million-node run need not pay for it.
Generators are written for speed at a million nodes: `barabasi_albert_edges` runs networkx's own algorithm on
plain lists (the same graph as `nx.barabasi_albert_graph` for the same seed), Erdos-Renyi and stochastic block
models draw G(n, p) blocks exactly with numpy, and `follower_edges` draws a directed Chung-Lu graph with
heavy-tailed follower counts edge by edge.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lsbm_sim.errors import DataError, ScenarioError
from lsbm_sim.scenario import NetworkSpec

if TYPE_CHECKING:  # networkx loads when a graph is asked for: building a world from arrays never needs it
    import networkx as nx
    import pandas as pd  # (and pandas when a file of degrees or a trait's blocks need it: `validate` need not)


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
        # Every array made here is written in place where it can be: at ten million edges each temporary is
        # 80 MB of fresh memory, and touching fresh memory costs more than the arithmetic (benchmarks/RESULTS.md).
        key = keys_of(self.source, self.target, self.n)
        key.sort()
        self.source, self.target = edges_of(key, self.n)
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
        import networkx as nx

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


def undirected(n: int, u: np.ndarray, v: np.ndarray, kind: str) -> Network:
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
    # `random.choice(repeated)` is `repeated[r]` for r drawn by `getrandbits(len(repeated).bit_length())` until
    # r < len(repeated) (CPython's _randbelow); drawing r here consumes the generator exactly as it does, without
    # two Python calls per draw (1.6x to 1.8x faster at 300,000 nodes, the same edges in the same order).
    getrandbits = rng.getrandbits
    # Node 0 joined to 1..m, then per newcomer: its m targets, then itself m times. The newcomers' edges are
    # read back from this list at the end, so the loop keeps one list.
    repeated = [0] * m + list(range(1, m + 1))
    extend = repeated.extend
    for source in range(m + 1, n):
        size = len(repeated)
        bits = size.bit_length()
        targets: set[int] = set()
        add = targets.add
        while len(targets) < m:
            r = getrandbits(bits)
            if r < size:
                add(repeated[r])
        extend(targets)
        extend((source,) * m)
    chosen = np.array(repeated, dtype=np.int32)[2 * m :].reshape(-1, 2 * m)[:, :m].ravel()
    new = np.concatenate([np.zeros(m, dtype=np.int32), np.repeat(np.arange(m + 1, n, dtype=np.int32), m)])
    old = np.concatenate([np.arange(1, m + 1, dtype=np.int32), chosen])
    return new, old


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


def follower_edges(
    followers_weight: np.ndarray, following_weight: np.ndarray | None, edges: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """About `edges` distinct follow edges u -> v (v follows u): a directed Chung-Lu graph, sampled edge by edge.

    Each account u gets a number of followers drawn from Multinomial(edges, followers_weight / sum), i.e. about
    `edges * followers_weight[u] / followers_weight.sum()` (Poisson noise aside), so the follower counts have
    the weights' distribution; its followers are drawn in proportion to `following_weight` (uniformly when
    None). A follower drawn twice for the same account, or an account drawn as its own follower, is redrawn for
    that account, so every account keeps its drawn follower count (capped at n - 1) and the graph is simple.
    """
    n = len(followers_weight)
    counts = np.minimum(rng.multinomial(edges, followers_weight / followers_weight.sum()), n - 1)
    source = np.repeat(np.arange(n, dtype=np.int64), counts)
    in_cdf = None if following_weight is None else np.cumsum(following_weight / following_weight.sum())

    def followers(size: int, large: bool = False) -> np.ndarray:
        if in_cdf is None:
            return rng.integers(n, size=size, dtype=np.int64)
        if large:  # a multinomial and a shuffle instead of `size` random look-ups in a million-entry table
            drawn = np.repeat(np.arange(n, dtype=np.int64), rng.multinomial(size, np.diff(in_cdf, prepend=0.0)))
            rng.shuffle(drawn)
            return drawn
        return np.minimum(np.searchsorted(in_cdf, rng.random(size), side="right"), n - 1).astype(np.int64)

    # The keys source * n + follower are built in place: at millions of edges each temporary is tens of MB of
    # fresh memory, which costs more to touch than the arithmetic (benchmarks/RESULTS.md).
    key = source
    key *= n
    key += followers(len(source), large=True)
    key.sort()
    owner, follower = np.divmod(key, n)
    kept = first_of_runs(key)
    kept &= owner != follower
    key, owner = key[kept], owner[kept]
    del follower, kept
    # Redraw what was lost, per account, until every account has its count. A hub holding a fraction f of all
    # accounts as followers loses about f of each redraw, so the rounds shrink geometrically. (A count that
    # distinct followers cannot meet, when nearly all following weight sits on fewer accounts, stays short after
    # the last round rather than looping for ever.)
    extra = np.zeros(0, dtype=np.int64)
    missing = counts - np.bincount(owner, minlength=n)
    del owner
    for _ in range(500):
        if not missing.any():
            break
        lost = np.flatnonzero(missing)
        owner = np.repeat(lost, missing[lost])
        new = owner * n + followers(len(owner))
        new.sort()
        new = new[first_of_runs(new) & (new // n != new % n) & ~_sorted_contains(key, new)
                  & ~_sorted_contains(extra, new)]  # fmt: skip
        np.subtract.at(missing, new // n, 1)
        extra = np.sort(np.concatenate([extra, new]))
    return edges_of(np.concatenate([key, extra]) if len(extra) else key, n)


def keys_of(source: np.ndarray, target: np.ndarray, n: int) -> np.ndarray:
    """One int64 key per edge, source * n + target (sorting the keys sorts the edges), with one array made."""
    key = np.multiply(source, max(n, 1), dtype=np.int64)
    key += target
    return key


def edges_of(key: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(source, target) as int32 from keys source * n + target, without int64 temporaries."""
    source, target = np.empty(len(key), dtype=np.int32), np.empty(len(key), dtype=np.int32)
    np.divmod(key, max(n, 1), out=(source, target), casting="unsafe")  # both fit: they are below n
    return source, target


def first_of_runs(sorted_keys: np.ndarray) -> np.ndarray:
    """True at the first of each run of equal values in a sorted array (np.unique without its cost)."""
    first = np.ones(len(sorted_keys), dtype=bool)
    first[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return first


def _sorted_contains(haystack: np.ndarray, needles: np.ndarray) -> np.ndarray:
    if len(haystack) == 0:
        return np.zeros(len(needles), dtype=bool)
    at = np.minimum(np.searchsorted(haystack, needles), len(haystack) - 1)
    return haystack[at] == needles


def power_law_weights(n: int, exponent: float, mean: float, rng: np.random.Generator) -> np.ndarray:
    """n Pareto draws with density ~ k^-exponent above a floor, scaled to the given mean and capped at (n - 1)/2
    (nobody can have more followers than there are other people; the cap at half keeps the redrawing of repeated
    followers quick and touches only the few largest hubs); the floor follows from the mean."""
    if exponent <= 1:
        raise ScenarioError(f"network.params.exponent: a power law needs an exponent above 1, got {exponent}")
    weights = (1.0 - rng.random(n)) ** (-1.0 / (exponent - 1.0))
    return _scaled(weights, mean, n)


def _scaled(weights: np.ndarray, mean: float, n: int) -> np.ndarray:
    """Weights scaled to the mean, each capped at (n - 1) / 2 with the rest scaled up to keep the mean."""
    cap = max((n - 1) / 2, 1.0)
    weights = weights * (mean / max(weights.mean(), 1e-300))
    for _ in range(50):
        over = weights > cap
        if not over.any():
            break
        weights[over] = cap
        free = ~over
        weights[free] *= max(mean * n - cap * over.sum(), 0.0) / weights[free].sum()
    return weights


def read_degree_file(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Follower counts (and, optionally, following counts) to resample: a CSV with a `followers` column (and
    maybe `following`), or one number per line."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"network.path: file not found: {path}")
    try:
        table = pd.read_csv(path, engine="c", comment="#", header=None, dtype=str, skip_blank_lines=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a CSV of follower counts ({exc})") from None
    names = [str(x).strip().lower() for x in table.iloc[0]]
    if "followers" in names:
        table = table.iloc[1:]
        table.columns = names
    elif table.shape[1] == 1:
        table.columns = ["followers"]
    else:
        raise DataError(f"{path}: expected a 'followers' column (and maybe 'following'), or one count per line")
    columns = {}
    for name in ("followers", "following"):
        if name not in table.columns:
            continue
        values = pd.to_numeric(table[name].str.strip(), errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
        if len(bad):
            # The row's line in the file: data rows start after the header row, if any.
            line = int(bad[0]) + 1 + (1 if "followers" in names else 0)
            raise DataError(f"{path} row {line}: {name} {table[name].iloc[bad[0]]!r} is not a count >= 0")
        columns[name] = values
    if len(columns["followers"]) == 0 or columns["followers"].sum() <= 0:
        raise DataError(f"{path}: no follower counts above 0")
    return columns["followers"], columns.get("following")


def follower_network(spec: NetworkSpec, n: int, rng: np.random.Generator, path: Path | None) -> Network:
    """A directed follower graph with heavy-tailed follower counts (see `follower_edges`).

    Follower counts follow a power law with `exponent` (P(k) ~ k^-exponent; about 2 to 2.5 on Twitter-like
    platforms), or are resampled from the counts in the file at `network.path`. How many accounts a person
    follows is far less skewed on real platforms: Poisson around the mean by default, or its own power law
    with `following_exponent` (or the file's `following` column). `mean_degree`: follow edges per person.

    The follower counts' exponent is recovered (a maximum-likelihood tail fit lands within about 0.1 at 50,000
    people; tests/test_network.py). Where both counts are heavy-tailed the following counts come out thinner
    than asked (exponent 2.6 fits as 2.7-2.9 at 50,000 people): a big account can gain a popular follower only
    once, so what it drew beyond that goes to others (the structural cutoff of simple graphs).
    """
    _check_params(spec, {"exponent", "mean_degree", "following_exponent"})
    mean = _param(spec, "mean_degree", float, 10.0, low=0)
    if mean > (n - 1) / 2:
        raise ScenarioError(f"network.params.mean_degree: {mean} follow edges per person do not fit among {n} people")
    if path is not None:
        if "exponent" in spec.params:
            raise ScenarioError("network.params.exponent: give either an exponent or a degree file (network.path)")
        counts, following = read_degree_file(path)
        picked = rng.integers(len(counts), size=n)
        followers_weight = _scaled(counts[picked] + 1e-9, mean, n)
        following_weight = None if following is None else _scaled(following[picked] + 1e-9, mean, n)
    else:
        followers_weight = power_law_weights(n, _param(spec, "exponent", float, 2.2), mean, rng)
        following_weight = None
    if "following_exponent" in spec.params:
        if following_weight is not None:
            raise ScenarioError("network.params.following_exponent: the degree file already gives 'following'")
        following_weight = power_law_weights(n, _param(spec, "following_exponent", float), mean, rng)
    u, v = follower_edges(followers_weight, following_weight, int(round(mean * n)), rng)
    return Network(n, u, v, directed=True, kind="follower")


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


def generate_network(
    spec: NetworkSpec, n: int, rng: np.random.Generator, traits: pd.DataFrame | None, path: Path | None = None
) -> Network:
    """Build a generated graph on n agents (traits are needed by the stochastic block model; `path` is the
    resolved `network.path`, which the follower graph may read its degrees from)."""
    kind = spec.kind
    if kind == "follower":
        return follower_network(spec, n, rng, path)
    if kind == "barabasi_albert":
        _check_params(spec, {"m"})
        m = _param(spec, "m", int, 3, low=1)
        new, old = barabasi_albert_edges(n, m, int(rng.integers(2**31)))
        if spec.directed:  # the newcomer follows m earlier accounts: early accounts gather followers
            return Network(n, old, new, directed=True, kind=kind)
        return undirected(n, new, old, kind)
    if kind == "watts_strogatz":
        _check_params(spec, {"k", "p"})
        if spec.directed:
            raise ScenarioError("network.directed: watts_strogatz builds an undirected graph")
        u, v = watts_strogatz_edges(n, _param(spec, "k", int, 10), _param(spec, "p", float, 0.1, 0, 1), rng)
        return undirected(n, u, v, kind)
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
        return Network(n, u, v, directed=True, kind=kind) if spec.directed else undirected(n, u, v, kind)
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
    import pandas as pd

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
    return Network(n, u, v, directed=True, kind="stochastic_block") if spec.directed else undirected(n, u, v, "stochastic_block")
