"""The `lsbm-sim` command: runs, validates, and meets bad input with one line and exit code 2."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, small_scenario

from lsbm_sim.cli import main


def write(tmp_path: Path, data: dict, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_run_writes_a_complete_results_folder_and_prints_a_summary(tmp_path, capsys):
    path = write(tmp_path, small_scenario())
    code, out, err = run_cli(capsys, "run", path, "--out", tmp_path / "res", "--seed", 7, "--steps", 4, "--set", "feed.size=2")
    assert code == 0
    manifest = json.loads((tmp_path / "res" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["seed"] == 7 and manifest["steps_run"] == 4
    assert manifest["scenario"]["feed"]["size"] == 2
    assert "decisions" in out and "cascade" in out


def test_run_ends_with_the_question_what_this_run_says_and_what_to_run_next(tmp_path, capsys):
    path = write(tmp_path, small_scenario(description="Two posts. Which one travels further, and why?"))
    code, out, _ = run_cli(capsys, "run", path, "--out", tmp_path / "res", "--steps", 6)
    assert code == 0
    text = " ".join(out.split())
    assert "The question: Which one travels further, and why?" in text
    items = pd.read_parquet(tmp_path / "res" / "items.parquet").sort_values("reach", ascending=False)
    widest = items.iloc[0]  # the story's figures are the run's own
    assert f"This run says: {widest.item_id} reached {widest.reach:,} of 300 people" in text
    assert f"shared {widest.share:,} time" in text
    assert f"lsbm-sim sweep {path} --grid" in text and f"lsbm-sim compare {tmp_path / 'res'} --real" in text
    assert f"lsbm-sim app {path}" in text
    # A question field says it in the scenario's own words, over the description's.
    path = write(tmp_path, small_scenario(description="Two posts. Which?", question="Does b catch up with a?"), "q.yaml")
    code, out, _ = run_cli(capsys, "run", path, "--out", tmp_path / "q", "--steps", 3)
    assert code == 0 and "The question: Does b catch up with a?" in " ".join(out.split())


def test_the_story_of_a_run_with_many_posts_says_how_reach_is_spread(tmp_path, capsys):
    posts = [{"id": f"p{i}", "text": f"Post number {i} about the weather", "author": {"strategy": "random"}} for i in range(12)]
    path = write(tmp_path, small_scenario(content=posts))
    code, out, _ = run_cli(capsys, "run", path, "--out", tmp_path / "res", "--steps", 4)
    assert code == 0
    items = pd.read_parquet(tmp_path / "res" / "items.parquet")
    never = (items["share"] == 0).mean()
    text = " ".join(out.split())
    assert "12 posts; the 1 widest (1%) took" in text and f"{never:.0%} were never shared" in text


def test_the_story_counts_in_words_that_agree_with_the_number(tmp_path):
    """'shared 1 time', 'went 1 share deep': one run's own result, with a post shared once and one shared twice."""
    from lsbm_sim import run
    from lsbm_sim.cli import run_story

    few = run(write(tmp_path, small_scenario()), overrides=["steps=4"])
    few.items.loc[:, "share"] = [1, 2][: len(few.items)]
    text = " ".join(run_story(few))
    assert "shared 1 time;" in text and "shared 1 times" not in text
    if len(few.items) > 1:
        assert "shared 2 times;" in text
    posts = [{"id": f"p{i}", "text": f"Post number {i} about the weather"} for i in range(12)]
    many = run(write(tmp_path, small_scenario(content=posts), "many.yaml"), overrides=["steps=2"])
    many.items.loc[:, "depth"] = 1
    assert "the deepest cascade went 1 share deep." in " ".join(run_story(many))
    many.items.loc[:, "depth"] = 3
    assert "the deepest cascade went 3 shares deep." in " ".join(run_story(many))


def test_shipped_scenarios_are_listed_and_run_by_name(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no scenarios/ folder here
    code, out, _ = run_cli(capsys, "scenarios")
    assert code == 0
    text = " ".join(out.split())
    assert "platform_day" in text and "Which posts travel, and how far, when everyone is posting" in text
    code, out, err = run_cli(capsys, "run", "eco_product_launch", "--out", tmp_path / "eco", "--set",
                             "population.size=300", "--steps", 7, "-q")  # fmt: skip
    assert code == 0, err
    assert json.loads((tmp_path / "eco" / "manifest.json").read_text())["name"] == "eco_product_launch"


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (["calibrate", "eco_product_launch", "--param", "feed.size"], "feed.size"),
        (["optimize", "eco_product_launch", "--post", "nonesuch", "--variants", "v.txt"], "nonesuch"),
        (["sweep", "eco_product_launch", "--grid", "colour=1,2"], "colour"),
    ],
)
def test_every_command_finds_a_shipped_scenario_by_name(tmp_path, capsys, monkeypatch, command, error):
    # Each command is stopped by a later bad argument, so the error shows that the scenario itself was found.
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, *command)
    assert code == 2 and error in err and "scenario file not found" not in err, err


def test_python_runs_a_shipped_scenario_by_name(tmp_path, monkeypatch):
    from lsbm_sim import run
    from lsbm_sim.studies.sweep import sweep

    monkeypatch.chdir(tmp_path)
    small = ["population.size=300", "steps=8"]
    assert run("eco_product_launch", seed=1, overrides=small).manifest["name"] == "eco_product_launch"
    assert len(sweep("eco_product_launch", grid={"population.size": [300]}, workers=1)) > 0


def test_validate_accepts_a_good_scenario(tmp_path, capsys):
    code, _, err = run_cli(capsys, "validate", write(tmp_path, small_scenario()))
    assert code == 0 and "valid" in err and "300 agents" in err


def test_validate_of_a_generated_world_loads_neither_mesa_nor_pandas_nor_pyarrow():
    # `lsbm-sim validate` answers in the time its imports take: the engine (Mesa), the results' tables (pandas)
    # and the edge-list reader (pyarrow) stay out unless the scenario needs them (benchmarks/RESULTS.md).
    script = ("import sys; from lsbm_sim.engine.validate import check_scenario; "
              "check_scenario('scenarios/eco_product_launch.yaml', ['population.size=300']); "
              "print(sorted(m for m in ('mesa', 'pandas', 'pyarrow') if m in sys.modules))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def bad_cases(tmp_path: Path) -> list[tuple[list[str], str]]:
    edges = tmp_path / "edges.csv"
    edges.write_text("1,2\n2,3\nthree\n")
    good_edges = tmp_path / "good.csv"
    good_edges.write_text("1,2\n2,3\n3,1\n")
    edge_scenario = small_scenario(population={"activity": 0.5}, network={"kind": "edgelist", "path": "edges.csv"})
    node_scenario = small_scenario(
        population={"activity": 0.5},
        network={"kind": "edgelist", "path": "good.csv"},
        content=[{"id": "a", "text": "hi", "author": {"strategy": "node", "node": 99}}],
    )
    return [
        (["missing.yaml"], "missing.yaml: scenario file not found"),
        ([write(tmp_path, small_scenario(colour="blue"), "k.yaml")], "colour: unknown field"),
        ([write(tmp_path, small_scenario(steps="ten"), "t.yaml")], "steps: Input should be a valid integer"),
        ([write(tmp_path, small_scenario(population={"size": 10, "activity": 1.2}), "p.yaml")], "population.activity: Input should be less than or equal to 1"),
        ([write(tmp_path, small_scenario(population={"size": -3}), "n.yaml")], "population.size: Input should be greater than 0"),
        ([write(tmp_path, small_scenario(network={"kind": "hypercube"}), "h.yaml")], "network.kind: Input should be"),
        ([write(tmp_path, edge_scenario, "e.yaml")], "edges.csv line 3: expected 'source,target', got 'three'"),
        ([write(tmp_path, node_scenario, "a.yaml")], "content[0].author.node: no node 99 in the network"),
        ([write(tmp_path, small_scenario(), "o.yaml"), "--set", "feed.colour=red"], "--set feed.colour: 'feed.colour' is not a scenario field"),
    ]


@pytest.mark.parametrize("command", ["run", "validate"])
def test_bad_input_exits_2_with_one_message_and_no_results(tmp_path, capsys, command):
    for argv, message in bad_cases(tmp_path):
        out = tmp_path / "res"
        extra = ["--out", out] if command == "run" else []
        code, _, err = run_cli(capsys, command, *[a if not isinstance(a, Path) else a for a in argv], *extra)
        assert code == 2, (argv, err)
        assert message in err, (message, err)
        assert "Traceback" not in err
        assert err.strip().startswith("error:") and len(err.strip().splitlines()) == 1, err
        assert not out.exists() and not (tmp_path / "res.partial").exists()
        assert not any(p.name.startswith(".res.") for p in tmp_path.iterdir())


def test_the_installed_command_runs_a_shipped_scenario(tmp_path):
    result = subprocess.run(
        ["lsbm-sim", "run", "scenarios/eco_product_launch.yaml", "--out", str(tmp_path / "eco"),
         "--set", "population.size=400", "--steps", "8"],  # fmt: skip
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "eco" / "manifest.json").exists()
    assert "eco_launch" in result.stdout


def test_usage_errors_exit_2(capsys):
    code, _, err = run_cli(capsys, "run")
    assert code == 2 and "Missing argument" in err


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))


def test_validate_checks_that_a_language_model_checkpoint_is_there(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = small_scenario(behavior={"backend": "hf", "model": "models/lsbm"})
    code, _, err = run_cli(capsys, "validate", write(tmp_path, data))
    assert code == 2 and "behavior.model" in err and "models/lsbm" in err and "Traceback" not in err


def one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_more_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    scenario = write(tmp_path, small_scenario(steps=3))
    (tmp_path / "a_file").write_text("")
    (tmp_path / "nan.csv").write_text("1,2\nNaN,inf\n")
    (tmp_path / "people.csv").write_text("age_band,interests,leaning,susceptibility\n18-24,sports,left,low\n,,,medium\n")
    (tmp_path / "twice.yaml").write_text("name: a\nsteps: 3\nfeed: {size: 2}\nfeed: {size: 9}\n")
    from_file = {"population": {"activity": 0.5}, "behavior": {"backend": "constant", "probabilities": {"share": 0.1}}}
    cases = [
        (["run", scenario, "--seed", "-1"], ["--seed -1"]),
        (["run", scenario, "--out", tmp_path / "a_file" / "res"], ["a_file is a file"]),
        (["run", scenario, "--out", "/proc/lsbm-res"], ["--out /proc/lsbm-res", "/proc"]),
        (["run", scenario, "--out", "/sys/lsbm-res"], ["--out /sys/lsbm-res", "/sys"]),
        (["validate", scenario, "--set", "population.size=100000000000"], ["population.size", "GiB of memory"]),
        (["validate", scenario, "--set", "seed=-1"], ["seed: Input should be greater than or equal to 0"]),
        (["validate", write(tmp_path, {**small_scenario(), **from_file, "network": {"kind": "edgelist", "path": "nan.csv"}}, "n.yaml")],
         ["nan.csv line 2: node label 'NaN' is a missing or infinite number"]),
        (["validate", write(tmp_path, {**small_scenario(), **from_file, "population": {"path": "people.csv"}}, "p.yaml")],
         ["people.csv", "empty 'age_band' on line(s) [3]"]),
        (["validate", tmp_path / "twice.yaml"], ["twice.yaml: line 4: 'feed' is given twice"]),
        (["sweep", scenario, "--metric", "virality", "--out", tmp_path / "sw"], ["--metric 'virality'", "structural_virality"]),
        (["sweep", scenario, "--grid", "feed.size=", "--out", tmp_path / "sw"], ["grid 'feed.size': give a non-empty list"]),
        (["sweep", scenario, "--grid", "population.path=nowhere.csv", "--out", tmp_path / "sw"], ["population.path: file not found", "nowhere.csv"]),
        (["sweep", scenario, "--seed", "-2", "--out", tmp_path / "sw"], ["--seed -2"]),
    ]
    for argv, fragments in cases:
        code, _, err = run_cli(capsys, *argv)
        one_line_error(code, err, *fragments)
    assert not (tmp_path / "sw").exists()  # bad sweep arguments are refused before the first run


def test_an_unwritable_answer_cache_is_one_message():
    from lsbm_sim.behavior.broker import PersistentCache
    from lsbm_sim.errors import LsbmError

    with pytest.raises(LsbmError, match=r"behavior.cache: cannot open /proc/lsbm/answers.sqlite"):
        PersistentCache("/proc/lsbm/answers.sqlite", fingerprint="x")


def test_existing_results_are_replaced_only_with_overwrite(tmp_path, capsys):
    scenario = write(tmp_path, small_scenario(steps=3))
    assert run_cli(capsys, "run", scenario, "--out", tmp_path / "res", "-q")[0] == 0
    before = (tmp_path / "res" / "manifest.json").read_text()
    code, _, err = run_cli(capsys, "run", scenario, "--out", tmp_path / "res", "-q", "--seed", 9)
    one_line_error(code, err, "holds the results of an earlier run; pass --overwrite")
    assert (tmp_path / "res" / "manifest.json").read_text() == before
    assert run_cli(capsys, "run", scenario, "--out", tmp_path / "res", "-q", "--seed", 9, "--overwrite")[0] == 0
    assert json.loads((tmp_path / "res" / "manifest.json").read_text())["seed"] == 9


def test_app_on_a_port_in_use_exits_2(tmp_path, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run_cli(capsys, "app", "--port", port)
    assert code == 2, err  # refused before any server starts (the page would otherwise block here)
    one_line_error(code, err, f"--port {port}", "choose another port")


def test_a_failed_sweep_run_exits_1_naming_it_after_the_others_finish(tmp_path, capsys):
    scenario = write(tmp_path, small_scenario(steps=3, population={"size": 100, "activity": 0.5}))
    code, out, err = run_cli(capsys, "sweep", scenario, "--grid", "content.0.author.node=[0, 100000]",
                             "--grid", "content.0.author.strategy=node", "--workers", 1, "--out", tmp_path / "sw")  # fmt: skip
    assert code == 1, err
    assert "1 of 2 sweep runs failed: run 1" in err and "no node 100000" in err and "Traceback" not in err
    assert len(list((tmp_path / "sw" / "runs").iterdir())) == 1  # the finished run is kept
