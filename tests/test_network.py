"""Graph builders and loaders: the same graphs networkx makes, files read with errors that name the line."""

from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from lsbm_sim.errors import DataError, ScenarioError
from lsbm_sim.world.network import Network, barabasi_albert_edges, generate_network, gnp_block_edges
from lsbm_sim.world.graph_files import load_network, read_edgelist
from lsbm_sim.world.population import draw_population
from lsbm_sim.scenario import NetworkSpec, PopulationSpec


def edge_set(net: Network) -> set[tuple[int, int]]:
    return set(zip(net.source.tolist(), net.target.tolist()))


def test_barabasi_albert_is_networkx_graph_for_the_same_seed():
    new, old = barabasi_albert_edges(500, 3, seed=9)
    ours = {frozenset(e) for e in zip(new.tolist(), old.tolist())}
    theirs = {frozenset(e) for e in nx.barabasi_albert_graph(500, 3, seed=9).edges()}
    assert ours == theirs


def test_undirected_graph_means_mutual_following_and_csr_agrees():
    net = generate_network(NetworkSpec(kind="barabasi_albert", params={"m": 2}), 200, np.random.default_rng(1), None)
    edges = edge_set(net)
    assert all((v, u) in edges for u, v in edges)
    for u in (0, 5, 199):
        assert sorted(net.followers_of(u).tolist()) == sorted(v for a, v in edges if a == u)
        assert net.out_degree[u] == len(net.followers_of(u))
    assert all(sorted(net.following_of(v).tolist()) == sorted(u for u, b in edges if b == v) for v in (0, 7, 150))
    owner, followers = net.followers_of_many(np.array([5, 0]))
    assert sorted(followers[owner == 0].tolist()) == sorted(net.followers_of(5).tolist())
    assert nx.is_connected(net.graph) and net.graph.number_of_edges() * 2 == net.num_edges


def test_directed_barabasi_albert_gives_early_nodes_followers():
    net = generate_network(NetworkSpec(kind="barabasi_albert", params={"m": 2}, directed=True), 300, np.random.default_rng(2), None)
    assert net.directed and net.in_degree[10:].min() == 2  # every newcomer follows m accounts
    assert net.following_of(200).tolist() == sorted(net.source[net.target == 200].tolist()) and len(net.following_of(200)) == 2
    assert net.out_degree[:5].mean() > 5 * net.out_degree[100:].mean()


def test_gnp_blocks_are_exact_in_expectation_and_simple():
    rng = np.random.default_rng(3)
    nodes = np.arange(400)
    counts = []
    for _ in range(30):
        u, v = gnp_block_edges(nodes, nodes, 0.02, rng, same=True, directed=False)
        assert (u != v).all() and (u < v).all()
        assert len(set(zip(u.tolist(), v.tolist()))) == len(u)
        counts.append(len(u))
    expected = 0.02 * 400 * 399 / 2
    assert abs(np.mean(counts) - expected) < 4 * np.sqrt(expected / 30)


def test_stochastic_block_has_homophily_on_the_trait():
    population = draw_population(PopulationSpec(size=600), 600, np.random.default_rng(4))
    spec = NetworkSpec(kind="stochastic_block", params={"by": "leaning", "p_in": 0.05, "p_out": 0.005})
    net = generate_network(spec, 600, np.random.default_rng(5), population.traits)
    leaning = population.traits["leaning"].to_numpy()
    same = (leaning[net.source] == leaning[net.target]).mean()
    assert same > 0.75
    with pytest.raises(ScenarioError, match=r"network.params.by: 'shoe_size' is not a persona trait"):
        generate_network(NetworkSpec(kind="stochastic_block", params={"by": "shoe_size", "p_in": 0.1, "p_out": 0.1}),
                         600, np.random.default_rng(5), population.traits)  # fmt: skip


def test_watts_strogatz_keeps_edge_count_and_degree():
    net = generate_network(NetworkSpec(kind="watts_strogatz", params={"k": 6, "p": 0.2}), 500, np.random.default_rng(6), None)
    assert net.num_edges == 500 * 6 and (net.source != net.target).all()
    assert len(edge_set(net)) == net.num_edges


def test_bad_generator_params_are_named():
    with pytest.raises(ScenarioError, match=r"network.params: unknown for barabasi_albert: \['k'\]"):
        generate_network(NetworkSpec(kind="barabasi_albert", params={"k": 3}), 50, np.random.default_rng(0), None)
    with pytest.raises(ScenarioError, match=r"network.params.m: Barabasi-Albert needs 1 <= m"):
        generate_network(NetworkSpec(kind="barabasi_albert", params={"m": 80}), 50, np.random.default_rng(0), None)
    with pytest.raises(ScenarioError, match=r"network.params.p: must lie in"):
        generate_network(NetworkSpec(kind="erdos_renyi", params={"p": 3}), 50, np.random.default_rng(0), None)


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [("a,b\nb,c\n", None), ("source\ttarget\na\tb\nb\tc\n", None), ("# comment\na b 0.5\nb  c\n", None), ("a;b\nb;c\n", ";")],
)
def test_edge_lists_in_common_layouts(tmp_path: Path, text: str, delimiter):
    path = tmp_path / "edges.txt"
    path.write_text(text)
    net = read_edgelist(path, directed=True, delimiter=delimiter)
    assert net.node_labels == ["a", "b", "c"]
    assert edge_set(net) == {(0, 1), (1, 2)}  # a -> b: b follows a


def test_integer_labels_sort_numerically_and_undirected_doubles(tmp_path: Path):
    path = tmp_path / "edges.txt"
    path.write_text("10 2\n2 3\n3 10\n3 3\n2 3\n")  # a self-loop and a duplicate are dropped
    net = read_edgelist(path, directed=False)
    assert net.node_labels == [2, 3, 10]
    assert net.num_edges == 6
    assert net.index_of(10) == 2 and net.index_of("10") == 2 and net.index_of(99) is None


def test_unparseable_edge_list_names_the_line(tmp_path: Path):
    path = tmp_path / "edges.csv"
    path.write_text("1,2\n2,3\n4\n")
    with pytest.raises(DataError, match=r"edges.csv line 3: expected 'source,target', got '4'"):
        read_edgelist(path, directed=False)
    with pytest.raises(DataError, match="file not found"):
        read_edgelist(tmp_path / "missing.csv", directed=False)


def test_graphml_and_gexf_load_with_labels(tmp_path: Path):
    g = nx.DiGraph([("x", "y"), ("y", "z")])
    nx.write_graphml(g, tmp_path / "g.graphml")
    nx.write_gexf(g, tmp_path / "g.gexf")
    for kind in ("graphml", "gexf"):
        net = load_network(NetworkSpec(kind=kind, path=tmp_path / f"g.{kind}"), tmp_path / f"g.{kind}")
        assert net.directed and net.n == 3 and net.num_edges == 2
        assert [net.node_labels[i] for i in net.followers_of(net.index_of("x"))] == ["y"]
    (tmp_path / "bad.graphml").write_text("<graphml><graph><node id='a'></graph>")
    with pytest.raises(DataError, match=r"bad.graphml:.* not a valid GRAPHML file"):
        load_network(NetworkSpec(kind="graphml", path=tmp_path / "bad.graphml"), tmp_path / "bad.graphml")


def test_real_facebook_graph_loads(shared_data: Path):
    net = read_edgelist(shared_data / "snap_ego_facebook" / "facebook_combined.txt", directed=False)
    assert net.n == 4039 and net.num_edges == 2 * 88234


# ------------------------------------------------------------------------------------------- follower graph


def tail_exponent(degrees: np.ndarray, k_min: int) -> float:
    """The discrete power-law exponent fitted by maximum likelihood above k_min (Clauset, Shalizi & Newman
    2009, eq. 3.7: the continuous approximation with k_min - 1/2)."""
    tail = degrees[degrees >= k_min].astype(float)
    return 1.0 + len(tail) / np.log(tail / (k_min - 0.5)).sum()


@pytest.mark.parametrize("exponent", [2.1, 2.5])
def test_follower_graph_has_the_power_law_and_mean_degree_asked_for(exponent: float):
    spec = NetworkSpec(kind="follower", params={"exponent": exponent, "mean_degree": 8})
    net = generate_network(spec, 50_000, np.random.default_rng(3), None)
    assert net.directed and net.kind == "follower" and net.num_edges == 8 * 50_000
    assert (net.source != net.target).all() and len(np.unique(net.source.astype(np.int64) * net.n + net.target)) == net.num_edges
    assert abs(tail_exponent(net.out_degree, 30) - exponent) < 0.12
    # Following counts are not heavy-tailed by default (Poisson around the mean); with their own exponent they are.
    assert net.in_degree.max() < 40
    spec = NetworkSpec(kind="follower", params={"exponent": exponent, "mean_degree": 8, "following_exponent": 2.6})
    net = generate_network(spec, 50_000, np.random.default_rng(3), None)
    assert net.num_edges == 8 * 50_000 and net.in_degree.max() > 200
    # Thinner than asked (documented): a pair of hubs can be linked only once.
    assert 2.6 <= tail_exponent(net.in_degree, 30) < 2.6 + 0.35


def test_follower_graph_resamples_degrees_from_a_file(tmp_path: Path):
    counts = tmp_path / "followers.csv"
    counts.write_text("followers,following\n" + "".join(f"{k},5\n" for k in [0, 1, 2, 3, 500] * 20))
    spec = NetworkSpec(kind="follower", params={"mean_degree": 5}, path=counts)
    net = generate_network(spec, 5_000, np.random.default_rng(4), None, counts)
    assert net.num_edges == 25_000
    # One account in five has the weight of a 500-follower account: scaled to mean 5, those have about 25
    # followers each and hold about 500/506 of all follows.
    big = net.out_degree > 10
    assert 0.17 < big.mean() < 0.23 and net.out_degree[big].sum() / net.num_edges > 0.95
    (tmp_path / "bad.csv").write_text("followers\n3\n-2\n")
    with pytest.raises(DataError, match=r"bad.csv row 3: followers '-2' is not a count >= 0"):
        generate_network(spec, 100, np.random.default_rng(4), None, tmp_path / "bad.csv")


def test_follower_graph_bad_settings_are_named():
    with pytest.raises(ScenarioError, match=r"network.params.exponent: a power law needs an exponent above 1"):
        generate_network(NetworkSpec(kind="follower", params={"exponent": 0.5}), 100, np.random.default_rng(0), None)
    with pytest.raises(ScenarioError, match=r"network.params.mean_degree: 80.0 follow edges per person do not fit"):
        generate_network(NetworkSpec(kind="follower", params={"mean_degree": 80}), 100, np.random.default_rng(0), None)
    with pytest.raises(ScenarioError, match=r"network.params: unknown for follower: \['m'\]"):
        generate_network(NetworkSpec(kind="follower", params={"m": 2}), 100, np.random.default_rng(0), None)
    with pytest.raises(Exception, match=r"a follower graph is directed"):
        NetworkSpec(kind="follower", directed=False)


# --------------------------------------------------------------------------------------- edge lists, fast path


@pytest.mark.parametrize(
    "text",
    [
        "# made by hand\nsource,target,weight\nann,bob,1\nbob,cy,2\n% a comment in the middle\ncy,ann,3\n",
        "ann\tbob\r\nbob\tcy\r\ncy\tann\r\n",
        "ann bob\nbob cy\n\ncy ann\n",
        "ann, bob\n bob ,cy\ncy,ann\n",  # spaces around the delimiter are not part of the labels
        "ann,bob\nbob,cy,0.5,extra\ncy,ann\n",  # a ragged line: read by the line reader, same graph
    ],
)
def test_edge_list_layouts_give_one_graph(tmp_path: Path, text: str):
    path = tmp_path / "edges.txt"
    path.write_text(text)
    net = read_edgelist(path, directed=True)
    assert net.node_labels == ["ann", "bob", "cy"] and edge_set(net) == {(0, 1), (1, 2), (2, 0)}


def test_fast_and_line_readers_agree_on_a_large_file(tmp_path: Path):
    from lsbm_sim.world.graph_files import _parse_lines
    from lsbm_sim.world.graph_files import _parse_fast, _layout

    rng = np.random.default_rng(8)
    u, v = rng.integers(0, 3000, 20_000), rng.integers(0, 3000, 20_000) * 7 + 5  # sparse, large ids
    path = tmp_path / "big.tsv"
    path.write_text("".join(f"{a}\t{b}\n" for a, b in zip(u.tolist(), v.tolist())))
    data = path.read_bytes()
    fast = _parse_fast(data, _layout(data, None))
    assert fast is not None and fast[0].type == "int64"  # the fast path took this file, as integers
    assert ([str(x) for x in fast[0].to_pylist()], [str(x) for x in fast[1].to_pylist()]) == _parse_lines(path, None)
    named = tmp_path / "named.csv"  # the same graph with string labels: the fast path's string branch
    named.write_text("".join(f"n{a}, n{b}\n" for a, b in zip(u.tolist(), v.tolist())))
    data = named.read_bytes()
    fast = _parse_fast(data, _layout(data, None))
    assert fast is not None and fast[0].type == "string"
    assert (fast[0].to_pylist(), fast[1].to_pylist()) == _parse_lines(named, None)
    net = read_edgelist(path, directed=True)
    labels = sorted(set(u.tolist()) | set(v.tolist()))
    assert net.node_labels == labels
    expected = {(labels.index(a), labels.index(b)) for a, b in zip(u.tolist(), v.tolist()) if a != b}
    assert edge_set(net) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,2\nNaN,inf\n", r"line 2: node label 'NaN' is a missing or infinite number"),
        ("a,b\nb,-Infinity\n", r"line 2: node label '-Infinity' is a missing or infinite number"),
        ("# c\n1,2\n\n2,3\n7\n", r"line 5: expected 'source,target', got '7'"),
        ("1 2\n2   \n", r"line 2: expected 'source target', got '2'"),
        ("a,b\n,c\n", r"line 2: expected 'source,target', got ',c'"),
    ],
)
def test_bad_edge_lists_name_the_line(tmp_path: Path, text: str, message: str):
    path = tmp_path / "edges.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_edgelist(path, directed=True)


def test_edge_list_that_is_not_utf8_is_named(tmp_path: Path):
    path = tmp_path / "edges.csv"
    path.write_bytes(b"a,b\nb,\xff\xfe\n")
    with pytest.raises(DataError, match=r"edges.csv: not a UTF-8 text edge list \(byte"):
        read_edgelist(path, directed=True)


def test_large_and_negative_integer_labels_sort_numerically(tmp_path: Path):
    path = tmp_path / "edges.txt"
    path.write_text("900000000000 -3\n-3 12\n12 900000000000\n-3 900000000000\n")
    net = read_edgelist(path, directed=True)
    assert net.node_labels == [-3, 12, 900000000000]
    assert edge_set(net) == {(2, 0), (0, 1), (1, 2), (0, 2)}
