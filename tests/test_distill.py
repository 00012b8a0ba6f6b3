"""Distillation: a tiny real language model teaches the surrogate's head on a scenario's own questions."""

from __future__ import annotations

import numpy as np
import pytest
import typer
import yaml
from llm_fixtures import hub_offline, scenario_dict, tiny_checkpoint  # noqa: F401 - fixtures
from typer.testing import CliRunner

from lsbm_sim import run
from lsbm_sim.behavior.hf import HFScorer
from lsbm_sim.behavior.surrogate import SurrogateModel
from lsbm_sim.studies.distill import (
    agreement,
    distill,
    distill_command,
    distill_queries,
    split_rows,
    teacher_probabilities,
    teacher_spec,
)
from lsbm_sim.errors import LsbmError
from lsbm_sim.engine.runner import sample_queries
from lsbm_sim.scenario import Scenario


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("distill")
    path = folder / "small.yaml"
    path.write_text(yaml.safe_dump(scenario_dict({"backend": "surrogate"}, agents=60, steps=4)))
    return str(path)


def test_the_fitted_head_agrees_with_the_teacher_better_than_the_default(tmp_path, tiny_checkpoint, scenario_file):
    queries = sample_queries(scenario_file, 300, seed=1)
    teacher = HFScorer(tiny_checkpoint)
    report = distill_queries(teacher, queries, tmp_path / "head.json", seed=1, holdout=0.25)
    held, before = report["heldout"], report["heldout_before_fit"]
    assert report["fit_rows"] + report["heldout_rows"] == len(queries)
    assert held["rows"] == report["heldout_rows"] == round(0.25 * len(queries))
    assert 0.0 <= held["mean_kl"] < before["mean_kl"]
    assert 0.0 <= held["argmax_accuracy"] <= 1.0
    # The saved head is a surrogate that answers like the report says.
    head = SurrogateModel.load(report["out"])
    _, held_rows = split_rows(len(queries), 0.25, 1)
    # The teacher's answers as the report got them: asked in another batch, a float32 model differs by ~1e-7,
    # which moves a KL of 1e-4 by more than the tolerance.
    again = agreement(teacher_probabilities(teacher, queries)[held_rows], head.predict_proba(queries.take(held_rows)))
    assert again["mean_kl"] == pytest.approx(held["mean_kl"], rel=1e-6)
    assert head.fit_report["distilled"]["teacher"] == teacher.fingerprint


def test_distill_end_to_end_then_a_scenario_uses_the_head(tmp_path, tiny_checkpoint, scenario_file):
    out = tmp_path / "heads" / "tiny.json"
    report = distill(f"{{backend: hf, model: {tiny_checkpoint}}}", scenario_file, sample=120, out=out)
    assert report["teacher_backend"] == "hf" and out.is_file()
    assert report["questions"] <= 120 and report["heldout"]["rows"] >= 1
    data = scenario_dict({"backend": "surrogate", "head": str(out)}, agents=60, steps=3)
    result = run(Scenario.from_dict(data))
    assert len(result.events) > 0 and result.manifest["complete"]


def test_teacher_specs_from_strings_and_files(tmp_path, tiny_checkpoint):
    spec, resolve = teacher_spec("{backend: hf, model: model, temperature: 2}", ["ignore", "share"])
    assert spec.reactions == ["ignore", "share"] and spec.temperature == 2.0
    teacher_file = tmp_path / "teacher.yaml"
    teacher_file.write_text(yaml.safe_dump({"behavior": {"backend": "hf", "model": "weights/tiny"}}))
    spec, resolve = teacher_spec(str(teacher_file), ["ignore", "like"])
    assert resolve(spec.model) == tmp_path / "weights" / "tiny"
    with pytest.raises(LsbmError, match="--teacher: behavior.backend"):
        teacher_spec("{backend: telepathy, model: x}", ["ignore", "like"])
    with pytest.raises(LsbmError, match="--teacher: file not found"):
        teacher_spec(str(tmp_path / "missing.yaml"), ["ignore", "like"])
    with pytest.raises(LsbmError, match="not a valid YAML"):
        teacher_spec("{backend: hf, model: [", ["ignore", "like"])


def test_bad_distill_input_is_one_message(tmp_path, tiny_checkpoint, scenario_file):
    teacher = f"{{backend: hf, model: {tiny_checkpoint}}}"
    with pytest.raises(LsbmError, match="reactions"):
        distill(f"{{backend: hf, model: {tiny_checkpoint}, reactions: [ignore, like]}}", scenario_file, 50, tmp_path / "h.json")
    with pytest.raises(LsbmError, match="--holdout"):
        distill(teacher, scenario_file, 50, tmp_path / "h.json", holdout=1.5)
    with pytest.raises(LsbmError, match="--sample"):
        distill(teacher, scenario_file, 1, tmp_path / "h.json")


def test_distill_command_reports_the_agreement(tmp_path, tiny_checkpoint, scenario_file):
    app = typer.Typer()
    app.command("distill")(distill_command)
    app.command("noop")(lambda: None)
    out = tmp_path / "head.json"
    result = CliRunner().invoke(app, ["distill", "--teacher", f"{{backend: hf, model: {tiny_checkpoint}}}",
                                      "--scenario", scenario_file, "--sample", "80", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "held-out" in result.output and "mean KL" in result.output and str(out) in result.output
    assert np.isfinite(SurrogateModel.load(out).coef).all()
