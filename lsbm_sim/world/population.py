"""Who the simulated people are: traits, persona texts, activity.

Traits are drawn per agent from the scenario's distributions (or read from a CSV). The persona text a behavior
model reads is rendered per *archetype*, a distinct combination of the traits that appear in the text, so a
million agents share a few thousand persona texts at most: prompts stay few and caches stay useful.
"""

from __future__ import annotations

import os

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lsbm_sim.errors import DataError, ScenarioError

if TYPE_CHECKING:  # the schema (pydantic) is not needed to write persona text, which the GPU benchmark does
    import pandas as pd

    from lsbm_sim.scenario import PopulationSpec

DISPOSITION = {"low": -1.0, "medium": 0.0, "high": 1.0}
DISPOSITION_TEXT = {
    "low": "rarely shares or reacts to posts",
    "medium": "reacts to posts now and then",
    "high": "often shares and comments on posts",
}
TRAIT_COLUMNS = ("age_band", "interests", "leaning", "susceptibility")


@dataclass
class Population:
    """The people of a simulation, as arrays (agent i is row i).

    `archetype[i]` indexes `personas` (the persona texts) and `dispositions` (how readily that archetype reacts,
    -1..1); `activity[i]` is agent i's probability of being online in a step; `traits` holds one row per agent
    (categorical columns), for community seeding, stochastic block models and analysis.
    """

    archetype: np.ndarray
    personas: list[str]
    dispositions: np.ndarray
    activity: np.ndarray
    trait_codes: dict[str, tuple[np.ndarray, list | pd.Index]]
    """Per trait: each person's code and the values the codes stand for (`traits` as plain arrays)."""
    node_labels: list | None = None

    @cached_property
    def traits(self) -> pd.DataFrame:
        """One row per person, a categorical column per trait. Made when first asked for: a run that never
        looks at traits (and `lsbm-sim validate`) does not import pandas for them."""
        import pandas as pd

        columns = {name: pd.Categorical.from_codes(codes, values) for name, (codes, values) in self.trait_codes.items()}
        return pd.DataFrame(columns)

    def reordered(self, order: np.ndarray, node_labels: list | None) -> Population:
        """The same people in another order (person i of the result is person order[i] here)."""
        return Population(
            archetype=self.archetype[order],
            personas=self.personas,
            dispositions=self.dispositions,
            activity=self.activity[order],
            trait_codes={name: (codes[order], values) for name, (codes, values) in self.trait_codes.items()},
            node_labels=node_labels,
        )

    @property
    def size(self) -> int:
        return len(self.archetype)


def persona_text(age_band: str, interests: tuple[str, ...], leaning: str, susceptibility: str) -> str:
    """'Follows news about the environment and technology. Aged 25-34, politically left, often shares ...'.

    The interests lead the text: the sentence encoder's similarity to a post is then mostly topical.
    """
    topics = " and ".join(interests) if len(interests) <= 2 else ", ".join(interests[:-1]) + " and " + interests[-1]
    return f"Follows news about {topics}. Aged {age_band}, politically {leaning}, {DISPOSITION_TEXT[susceptibility]}."


def _weights(levels: dict[str, float]) -> tuple[list[str], np.ndarray]:
    names = list(levels)
    w = np.array([levels[k] for k in names], dtype=np.float64)
    return names, w / w.sum()


def draw_activity(spec: PopulationSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """Each agent's probability of being online in a step."""
    from lsbm_sim.scenario import BetaActivity, UniformActivity

    activity = spec.activity
    if isinstance(activity, BetaActivity):
        return rng.beta(activity.a, activity.b, size=n).astype(np.float32)
    if isinstance(activity, UniformActivity):
        return rng.uniform(activity.low, activity.high, size=n).astype(np.float32)
    return np.full(n, float(activity), dtype=np.float32)


def draw_population(spec: PopulationSpec, n: int, rng: np.random.Generator) -> Population:
    """Draw n agents' traits from the scenario's distributions (vectorised: a million agents take a second)."""
    t = spec.traits
    ages, w_age = _weights(t.age_band)
    leanings, w_lean = _weights(t.leaning)
    suscept, w_sus = _weights(dict(t.susceptibility))
    topics, w_topic = _weights(t.interests)
    age = rng.choice(len(ages), size=n, p=w_age)
    lean = rng.choice(len(leanings), size=n, p=w_lean)
    sus = rng.choice(len(suscept), size=n, p=w_sus)
    # k distinct interests per agent, drawn without replacement in proportion to the weights (Gumbel top-k).
    k = min(spec.interests_per_agent, int((w_topic > 0).sum()))
    with np.errstate(divide="ignore"):
        keys = np.log(w_topic)[None, :] + rng.gumbel(size=(n, len(topics)))
    chosen = np.sort(np.argsort(-keys, axis=1)[:, :k], axis=1)  # sorted: {a, b} and {b, a} are one archetype
    interest_code = np.zeros(n, dtype=np.int64)
    for j in range(k):
        interest_code = interest_code * len(topics) + chosen[:, j]

    code = ((age * len(leanings) + lean) * len(suscept) + sus).astype(np.int64) * len(topics) ** k + interest_code
    unique_codes, archetype = np.unique(code, return_inverse=True)
    personas, dispositions = [], []
    for c in unique_codes.tolist():
        interests = _decode_interests(c % len(topics) ** k, k, topics)
        c //= len(topics) ** k
        c, s = divmod(c, len(suscept))
        a, le = divmod(c, len(leanings))
        personas.append(persona_text(ages[a], interests, leanings[le], suscept[s]))
        dispositions.append(DISPOSITION[suscept[s]])

    interest_sets, interest_index = np.unique(interest_code, return_inverse=True)
    interest_names = [";".join(_decode_interests(int(c), k, topics)) for c in interest_sets]
    return Population(
        archetype=archetype.astype(np.int32),
        personas=personas,
        dispositions=np.array(dispositions),
        activity=draw_activity(spec, n, rng),
        trait_codes={
            "age_band": (age, ages),
            "interests": (interest_index, interest_names),  # ";"-separated
            "leaning": (lean, leanings),
            "susceptibility": (sus, suscept),
        },
    )


def _decode_interests(code: int, k: int, topics: list[str]) -> tuple[str, ...]:
    names = []
    for _ in range(k):
        code, j = divmod(code, len(topics))
        names.append(topics[j])
    return tuple(reversed(names))


def read_population(spec: PopulationSpec, path: Path, rng: np.random.Generator) -> Population:
    """Personas from a CSV: a `persona` column of free text, or trait columns (age_band, interests separated by
    ';', leaning, susceptibility). Optional: `node` (the node label in the network file), `activity`,
    `susceptibility` (low/medium/high). Other columns are kept as traits (e.g. a department)."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"population.path: file not found: {path}")
    try:
        # Blank lines are kept as (empty) rows so that row i is line i + 2 of the file in every message.
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None
    if frame.empty:
        raise DataError(f"{path}: no rows")

    def line(i: int) -> int:
        return int(i) + 2  # 1-based, after the header line
    has_text = "persona" in frame.columns
    missing = [c for c in ("age_band", "interests", "leaning") if c not in frame.columns]
    if not has_text and missing:
        raise DataError(f"{path}: needs a 'persona' column or the trait columns {missing}")

    susceptibility = frame["susceptibility"] if "susceptibility" in frame.columns else pd.Series(["medium"] * len(frame))
    bad = ~susceptibility.isin(list(DISPOSITION))
    if bad.any():
        rows = [line(i) for i in np.flatnonzero(bad.to_numpy())[:5]]
        raise DataError(f"{path}: column 'susceptibility' must be low, medium or high (line(s) {rows})")

    if has_text:
        texts = frame["persona"].str.strip()
        empty = texts == ""
        if empty.any():
            rows = [line(i) for i in np.flatnonzero(empty.to_numpy())[:5]]
            raise DataError(f"{path}: empty 'persona' text on line(s) {rows}")
    else:
        for column in ("age_band", "interests", "leaning"):
            empty = frame[column].str.strip() == ""
            if empty.any():
                rows = [line(i) for i in np.flatnonzero(empty.to_numpy())[:5]]
                raise DataError(f"{path}: empty {column!r} on line(s) {rows}; give every row its traits")
        texts = pd.Series(
            [
                persona_text(a, tuple(s.strip() for s in i.split(";") if s.strip()), le, su)
                for a, i, le, su in zip(frame["age_band"], frame["interests"], frame["leaning"], susceptibility)
            ]
        )
    personas, archetype = np.unique(texts.to_numpy(dtype=str), return_inverse=True)
    first = {int(a): i for i, a in reversed(list(enumerate(archetype)))}
    dispositions = np.array([DISPOSITION[susceptibility.iloc[first[a]]] for a in range(len(personas))])

    if "activity" in frame.columns:
        activity = pd.to_numeric(frame["activity"], errors="coerce").to_numpy()
        bad = ~np.isfinite(activity) | (activity < 0) | (activity > 1)
        if bad.any():
            rows = [line(i) for i in np.flatnonzero(bad)[:5]]
            raise DataError(f"{path}: column 'activity' must be a number in [0, 1] (line(s) {rows})")
        activity = activity.astype(np.float32)
    else:
        activity = draw_activity(spec, len(frame), rng)

    reserved = {"persona", "node", "activity"}
    categorical = {c: pd.Categorical(frame[c]) for c in frame.columns if c not in reserved}
    node_labels = frame["node"].tolist() if "node" in frame.columns else None
    return Population(
        archetype=archetype.astype(np.int32),
        personas=[str(p) for p in personas],
        dispositions=dispositions,
        activity=activity,
        trait_codes={c: (values.codes, values.categories) for c, values in categorical.items()},
        node_labels=node_labels,
    )


def build_population(spec: PopulationSpec, n: int | None, rng: np.random.Generator, path: Path | None) -> Population:
    """The population a scenario describes; `n` is the size the network requires (None if it has no opinion)."""
    if path is not None:
        population = read_population(spec, path, rng)
        if spec.size is not None and spec.size != population.size:
            raise ScenarioError(f"population.size is {spec.size} but {path} has {population.size} rows")
        return population
    size = n if n is not None else spec.size
    if size is None:  # the schema's validator prevents this
        raise ScenarioError("population.size is required")
    check_fits_in_memory(size)
    return draw_population(spec, size, rng)


BASE_BYTES = 2**30
BYTES_PER_AGENT = 1400
"""A run's peak memory is estimated as BASE_BYTES + BYTES_PER_AGENT per person, a line above the peaks measured
for the largest shipped scenario (platform_day, 96 steps, benchmarks/RESULTS.md): the encoder and libraries are
paid once; the graph, the people and the per-(post, person) pairs grow with the population."""


def memory_needed(size: int) -> int:
    """The estimated peak memory, in bytes, of a run of `size` people."""
    return BASE_BYTES + size * BYTES_PER_AGENT


def check_fits_in_memory(size: int) -> None:
    """Refuse, before allocating anything, a population this machine's memory cannot hold."""
    need = memory_needed(size)
    have = physical_memory()
    if have is not None and need > have:
        raise ScenarioError(
            f"population.size: {size:,} people need about {need / 2**30:,.0f} GiB of memory; this machine has "
            f"{have / 2**30:,.0f} GiB"
        )


def physical_memory() -> int | None:
    """This machine's memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not a POSIX system that says
        return None
