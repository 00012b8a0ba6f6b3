"""Follow graphs from the files a scenario names (`network.path`): edge lists, GraphML and GEXF, into the
`Network` the engine steps on. Self-loops and repeated edges are dropped; a file that cannot be read is named,
with its first bad line where there is one.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from lsbm_sim.errors import DataError, ScenarioError
from lsbm_sim.scenario import NetworkSpec


from lsbm_sim.world.network import Network, edges_of, first_of_runs, keys_of, undirected


def _sniff_delimiter(line: str) -> str | None:
    for candidate in ("\t", ",", ";"):
        if candidate in line:
            return candidate
    return None  # whitespace


# Labels a spreadsheet or pandas would read as a missing or infinite number: as node names they are almost
# always a broken export, so a file that has them is refused rather than given nodes called "NaN".
NOT_A_LABEL = frozenset(f"{sign}{word}" for sign in ("", "+", "-") for word in ("nan", "inf", "infinity"))


def read_edgelist(path: Path, directed: bool, delimiter: str | None = None) -> Network:
    """An edge list: one 'source target' pair per line, separated by tabs, commas, semicolons or spaces.

    Lines starting with # or % are comments; a first line naming its columns with the usual words (source,
    target; from, to; src, dst; u, v; ...) is a header; further columns (weights, times) are ignored. Node
    labels may be any strings except NaN and infinities; they are sorted (numerically when all are integers) to
    give agent numbers.

    A well-formed file is parsed by pyarrow's C reader (a 10M-edge file in seconds); a file it cannot take as
    a clean table (ragged lines, runs of spaces, a bad line, a bad label) is read again line by line, which
    names the first bad line.
    """
    if not path.is_file():
        raise DataError(f"network.path: file not found: {path}")
    data = path.read_bytes()
    layout = _layout(data, delimiter)
    fast = _parse_fast(data, layout) if layout is not None else None
    if fast is not None:
        sources, targets = fast
        labels, src, dst = _index_labels(sources, targets)
        if labels is not None:
            return _edgelist_network(labels, src, dst, directed)
    sources_list, targets_list = _parse_lines(path, delimiter)
    labels, src, dst = _index_labels(pa.array(sources_list, pa.string()), pa.array(targets_list, pa.string()))
    if labels is None:  # the line reader checked every label, so this cannot happen
        raise DataError(f"{path}: unusable node labels")
    return _edgelist_network(labels, src, dst, directed)


@dataclass
class _Layout:
    """What the first data line says about the whole file: where the data starts, its delimiter and width."""

    offset: int
    delimiter: str
    columns: int
    comments_later: bool


def _layout(data: bytes, delimiter: str | None) -> _Layout | None:
    """Skip leading blank and comment lines and a header; None when the start is not plain UTF-8 text."""
    offset = 0
    while offset < len(data):
        end = data.find(b"\n", offset)
        end = len(data) if end < 0 else end + 1
        try:
            line = data[offset:end].decode("utf-8").strip()
        except UnicodeDecodeError:
            return None
        if not line or line[0] in "#%":
            offset = end
            continue
        delimiter = delimiter or _sniff_delimiter(line) or " "
        fields = _split(line, delimiter)
        if len(fields) < 2:
            return None  # the line reader names the line
        if _looks_like_header(fields):
            offset = end
        comments = data.find(b"\n#", offset) >= 0 or data.find(b"\n%", offset) >= 0 or data[offset : offset + 1] in (b"#", b"%")
        return _Layout(offset, delimiter, len(fields), comments)
    return None


def _split(line: str, delimiter: str) -> list[str]:
    fields = next(csv.reader([line], delimiter=delimiter)) if delimiter != " " else line.split()
    return [f.strip() for f in fields]


def _parse_fast(data: bytes, layout: _Layout) -> tuple[pa.ChunkedArray, pa.ChunkedArray] | None:
    """The first two columns, by pyarrow's multithreaded C reader: as integers when every label is one (the
    usual case, and the quickest), else as strings; None when the file is not a clean table (then the line
    reader takes over and names the first bad line)."""
    body = memoryview(data)[layout.offset :]
    if layout.comments_later:
        # Comment lines further down become blank lines, which the reader skips.
        body = memoryview(re.sub(rb"(?m)^[ \t]*[#%][^\r\n]*", b"", bytes(body)))
    names = [f"c{i}" for i in range(layout.columns)]
    for label_type in (pa.int64(), pa.string()):
        bad_rows: list[Any] = []
        try:
            table = pa_csv.read_csv(
                pa.py_buffer(body),
                read_options=pa_csv.ReadOptions(column_names=names),
                parse_options=pa_csv.ParseOptions(
                    delimiter=layout.delimiter, invalid_row_handler=lambda row: bad_rows.append(row) or "skip"
                ),
                convert_options=pa_csv.ConvertOptions(
                    include_columns=names[:2],
                    column_types={name: label_type for name in names[:2]},
                    strings_can_be_null=True,
                    null_values=[""],  # an empty field is the only missing label (not "NA", "null", ...)
                ),
            )
        except pa.ArrowInvalid:  # a label that is not an integer (then try strings); not UTF-8; a bad quote
            continue
        if bad_rows or table.num_rows == 0:
            return None
        sources, targets = table.column(names[0]), table.column(names[1])
        if label_type == pa.string() and _has_blanks(data, layout):
            # Spaces around a delimiter are not part of a label (the line reader strips them too).
            sources, targets = pc.utf8_trim_whitespace(sources), pc.utf8_trim_whitespace(targets)
            sources, targets = (pc.if_else(pc.equal(c, ""), None, c) for c in (sources, targets))
        if sources.null_count or targets.null_count:
            return None  # an empty field (a run of spaces, a trailing delimiter)
        return sources, targets
    return None


def _has_blanks(data: bytes, layout: _Layout) -> bool:
    """Whether a label may carry spaces or tabs around it (a search in C; trimming 20M labels is not free)."""
    return data.find(b" ", layout.offset) >= 0 or (layout.delimiter != "\t" and data.find(b"\t", layout.offset) >= 0)


def _parse_lines(path: Path, delimiter: str | None) -> tuple[list[str], list[str]]:
    """The edge list read line by line in Python: slow, but names the line of the first problem."""
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
                fields = _split(line, delimiter)
                if len(fields) < 2 or not fields[0] or not fields[1]:
                    raise DataError(f"{path} line {number}: expected 'source{_show(delimiter)}target', got {line!r}")
                if not header_checked:
                    header_checked = True
                    if _looks_like_header(fields):
                        continue
                for label in fields[:2]:
                    if label.lower() in NOT_A_LABEL:
                        raise DataError(
                            f"{path} line {number}: node label {label!r} is a missing or infinite number, not a "
                            "node name (a broken export?)"
                        )
                sources.append(fields[0])
                targets.append(fields[1])
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text edge list (byte {exc.start})") from None
    if not sources:
        raise DataError(f"{path}: no edges found")
    return sources, targets


INTEGER = r"^-?[0-9]+$"


def _index_labels(sources: pa.Array | pa.ChunkedArray, targets: pa.Array | pa.ChunkedArray) -> tuple[list | None, np.ndarray, np.ndarray]:
    """Agent numbers for the labels: sorted numerically when every label is an integer, else as strings.
    Returns (labels, source numbers, target numbers); labels None when some label is NaN or infinite."""
    both = pa.chunked_array(
        [c for col in (sources, targets) for c in (col.chunks if isinstance(col, pa.ChunkedArray) else [col])],
        type=sources.type,
    )
    m = len(sources)
    if pa.types.is_integer(both.type):  # the fast reader found integers
        labels, index = _dense(both.to_numpy())
        return labels.tolist(), index[:m], index[m:]
    # One hashing pass gives each row the number of its distinct label; the checks below look at each distinct
    # label once, and sorting the distinct labels renumbers the rows.
    encoded = pc.dictionary_encode(both).combine_chunks()
    unique, codes = encoded.dictionary, encoded.indices.to_numpy().astype(np.int64)
    if pc.all(pc.match_substring_regex(unique, INTEGER)).as_py() and _fits_int64(unique):
        labels, index = _dense(pc.cast(unique, pa.int64()).to_numpy()[codes])
        return labels.tolist(), index[:m], index[m:]
    if pc.any(pc.is_in(pc.utf8_lower(unique), value_set=pa.array(sorted(NOT_A_LABEL)))).as_py():
        return None, np.zeros(0), np.zeros(0)
    names = unique.to_pylist()
    order = sorted(range(len(names)), key=names.__getitem__)
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    index = rank[codes]
    return [names[i] for i in order], index[:m], index[m:]


def _fits_int64(labels: pa.Array | pa.ChunkedArray) -> bool:
    return pc.max(pc.utf8_length(labels)).as_py() <= 18  # 19+ digits may overflow; such labels stay strings


def _dense(numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct numbers and each number's place among them; a bincount when they are small
    non-negative numbers (node ids usually are), which is linear instead of a sort."""
    low, high = int(numbers.min()), int(numbers.max())
    if low >= 0 and high < 4 * len(numbers) + 1024:
        present = np.zeros(high + 1, dtype=bool)
        present[numbers] = True
        if present.all():  # the nodes are 0..n-1 already (usual): each number is its own place
            return np.arange(high + 1), numbers
        rank = np.cumsum(present, dtype=np.int64) - 1
        return np.flatnonzero(present), rank[numbers]
    order = np.argsort(numbers, kind="stable")
    ordered = numbers[order]
    first = first_of_runs(ordered)
    index = np.empty(len(numbers), dtype=np.int64)
    index[order] = np.cumsum(first) - 1
    return ordered[first], index


def _edgelist_network(labels: list, src: np.ndarray, dst: np.ndarray, directed: bool) -> Network:
    n = len(labels)
    src, dst = _drop_loops_and_duplicates(src, dst, directed, n)
    node_labels = None if labels == list(range(n)) else labels
    net = Network(n, src, dst, directed=True, kind="edgelist") if directed else undirected(n, src, dst, "edgelist")
    net.node_labels = node_labels
    return net


def _show(delimiter: str) -> str:
    return {"\t": "<TAB>", " ": " "}.get(delimiter, delimiter)


HEADER_WORDS = frozenset(
    "source target from to src dst u v node1 node2 node_1 node_2 followee follower id1 id2 sender receiver "
    "user1 user2 user_1 user_2 head tail".split()
)


def _looks_like_header(fields: list[str]) -> bool:
    """A header names its columns with the usual words (source,target; from,to; ...); anything else is data."""
    return all(f.lower() in HEADER_WORDS for f in fields[:2])


def _drop_loops_and_duplicates(
    src: np.ndarray, dst: np.ndarray, directed: bool, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Self-loops and repeated edges out (for an undirected graph, u-v and v-u are one edge). The edges come
    back sorted: `Network` sorts them anyway, so the file's order is not kept."""
    # Few temporaries, written in place where possible: at ten million edges each is 80 MB of fresh memory.
    keep = src != dst
    if not keep.all():
        src, dst = src[keep], dst[keep]
    if directed:
        key = keys_of(src, dst, n)
    else:
        key = np.minimum(src, dst).astype(np.int64, copy=False)
        key *= max(n, 1)
        key += np.maximum(src, dst)
    key.sort()
    first = first_of_runs(key)
    if not first.all():
        key = key[first]  # np.unique's hash table is several times slower than this sort
    return edges_of(key, n)


def read_graph_file(path: Path, kind: str) -> Network:
    """GraphML or GEXF via networkx; the file says whether it is directed."""
    import networkx as nx

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
