"""The scenario: who, on what network, sees which content, when, under which feed, with which behavior model.

A scenario is a YAML file validated by the pydantic models below. Unknown keys are errors, every error names the
field by its dotted path, and relative file paths resolve against the folder of the scenario file (those given as
`--set` overrides against the working directory).

>>> s = Scenario.from_yaml("scenarios/eco_product_launch.yaml", overrides=["feed.size=5"])  # doctest: +SKIP
>>> s.feed.size  # doctest: +SKIP
5
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from lsbm_sim.errors import ScenarioError
from lsbm_sim.vocabulary import DEFAULT_REACTIONS, SURROGATE_FEATURES

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]


class Strict(BaseModel):
    """A schema model that refuses fields it does not know (a typo is an error, not a silent default)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# ----------------------------------------------------------------------------------------------- population


class BetaActivity(Strict):
    """Per-agent activity drawn from Beta(a, b): a few very active people, many occasional ones."""

    distribution: Literal["beta"]
    a: Annotated[float, Field(gt=0)]
    b: Annotated[float, Field(gt=0)]


class UniformActivity(Strict):
    """Activity drawn uniformly between `low` and `high` for each person."""

    distribution: Literal["uniform"]
    low: Probability = 0.0
    high: Probability = 1.0

    @model_validator(mode="after")
    def _ordered(self):
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self


Activity = Union[Probability, Annotated[Union[BetaActivity, UniformActivity], Field(discriminator="distribution")]]


def _default_age_bands() -> dict[str, float]:
    return {"18-24": 0.2, "25-34": 0.25, "35-44": 0.2, "45-54": 0.15, "55-64": 0.12, "65+": 0.08}


def _default_interests() -> dict[str, float]:
    return {
        "environment": 0.12,
        "technology": 0.16,
        "politics": 0.14,
        "health": 0.12,
        "sports": 0.12,
        "entertainment": 0.14,
        "business": 0.10,
        "science": 0.10,
    }


def _default_leanings() -> dict[str, float]:
    return {"left": 0.3, "center": 0.4, "right": 0.3}


def _default_susceptibility() -> dict[str, float]:
    return {"low": 0.4, "medium": 0.45, "high": 0.15}


class Traits(Strict):
    """Trait distributions: each maps a level to its weight (weights need not sum to 1; they are normalised)."""

    age_band: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=_default_age_bands)
    interests: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=_default_interests)
    leaning: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=_default_leanings)
    susceptibility: dict[Literal["low", "medium", "high"], Annotated[float, Field(ge=0)]] = Field(
        default_factory=_default_susceptibility
    )

    @field_validator("age_band", "interests", "leaning", "susceptibility")
    @classmethod
    def _some_weight(cls, v: dict[str, float]) -> dict[str, float]:
        if not v or sum(v.values()) <= 0:
            raise ValueError("needs at least one level with a positive weight")
        return v


class PopulationSpec(Strict):
    """Who lives in the simulation.

    `size` may be left out when the network is read from a file (one agent per node) or the personas from a
    CSV. `activity` is the probability of being online in a step: one number for everyone, or a distribution.
    `path`: a CSV with one row per agent and a `persona` column (free text) or trait columns named as in
    `traits`, optionally `node` (the node label in the network file), `activity` and `susceptibility`.
    """

    size: PositiveInt | None = None
    activity: Activity = 0.5
    traits: Traits = Field(default_factory=Traits)
    interests_per_agent: Annotated[int, Field(ge=1, le=3)] = 2
    path: Path | None = None


# -------------------------------------------------------------------------------------------------- network

NetworkKind = Literal[
    "barabasi_albert", "watts_strogatz", "erdos_renyi", "stochastic_block", "follower", "edgelist", "graphml", "gexf"
]
FILE_KINDS = ("edgelist", "graphml", "gexf")


class NetworkSpec(Strict):
    """The follow graph. Edge u -> v means v follows u; an undirected graph means mutual following.

    Generators take their own arguments in `params` (barabasi_albert: m; watts_strogatz: k, p; erdos_renyi: p or
    mean_degree; stochastic_block: by (a persona trait), p_in, p_out; follower: exponent, mean_degree,
    following_exponent). File kinds read `path`; `follower` may read follower counts to resample from `path`.
    A follower graph is always directed.
    """

    kind: NetworkKind = "barabasi_albert"
    params: dict[str, Any] = Field(default_factory=dict)
    directed: bool = False
    path: Path | None = None
    delimiter: str | None = None

    @model_validator(mode="after")
    def _path_for_files(self):
        if self.kind in FILE_KINDS and self.path is None:
            raise ValueError(f"network.kind {self.kind!r} needs network.path")
        if self.kind not in (*FILE_KINDS, "follower") and self.path is not None:
            raise ValueError(f"network.path is only read for {', '.join(FILE_KINDS)} and follower, not {self.kind!r}")
        if self.kind == "follower":
            if "directed" in self.model_fields_set and not self.directed:
                raise ValueError("network.directed: a follower graph is directed (edge u -> v: v follows u)")
            if not self.directed:
                self.directed = True
        return self


# -------------------------------------------------------------------------------------------------- content


AuthorStrategy = Literal["random", "influencer", "node", "community", "followers", "quantile"]


class AuthorSpec(Strict):
    """Who posts it. `random`: random accounts; `influencer`: the `count` accounts with most followers, or with
    `top: K` `count` accounts drawn at random among the K with most followers (so that many posts get different
    famous authors); `node`: the given node label; `community`: random accounts whose persona trait `trait` has
    the value `value`; `followers`: accounts drawn with probability proportional to their follower count;
    `quantile`: random accounts whose follower count ranks between the `quantiles` [low, high] of all accounts
    (ranked by followers, ties by agent number): [0.99, 1] is the top 1%, [0, 0.5] the less-followed half.
    `fraction`: instead of `count`, that share of all people (at least one), so that a scenario run smaller
    (`--set population.size=...`) keeps its proportions: 0.015 is 3,000 of 200,000."""

    strategy: AuthorStrategy = "random"
    count: PositiveInt = 1
    fraction: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    node: int | str | None = None
    trait: str | None = None
    value: str | None = None
    top: PositiveInt | None = None
    quantiles: tuple[Probability, Probability] | None = None

    @model_serializer(mode="wrap")
    def _without_count_beside_fraction(self, handler):
        # A dump is read back (--set overrides, sweeps' workers, checkpoints, to_yaml): with a fraction, the
        # count is not the scenario's, and the two together would be refused.
        data = handler(self)
        if self.fraction is not None:
            data.pop("count", None)
        return data

    @model_validator(mode="after")
    def _needs(self):
        if self.fraction is not None and "count" in self.model_fields_set:
            raise ValueError("give count (how many people) or fraction (what share of them), not both")
        if self.fraction is not None and self.strategy == "node":
            raise ValueError("author.fraction: strategy 'node' names one author")
        if self.strategy == "node" and self.node is None:
            raise ValueError("author.strategy 'node' needs author.node")
        if self.strategy == "community" and (self.trait is None or self.value is None):
            raise ValueError("author.strategy 'community' needs author.trait and author.value")
        if self.top is not None:
            if self.strategy != "influencer":
                raise ValueError(f"author.top is read only by strategy 'influencer', not {self.strategy!r}")
            if self.top < self.count:
                raise ValueError(f"author.top ({self.top}) must be at least author.count ({self.count})")
        if self.strategy == "quantile":
            if self.quantiles is None:
                raise ValueError("author.strategy 'quantile' needs author.quantiles: [low, high], e.g. [0.9, 1.0]")
            if self.quantiles[0] >= self.quantiles[1]:
                raise ValueError(f"author.quantiles: low must be below high, got {list(self.quantiles)}")
        elif self.quantiles is not None:
            raise ValueError(f"author.quantiles is read only by strategy 'quantile', not {self.strategy!r}")
        return self


class PostSpec(Strict):
    """A post: its text, topic, who posts it and at which step it appears. `p`: its own share probability under
    the independent_cascade backend (default: behavior.p). `initial_likes`: likes it shows when it enters, from
    no one in the simulation (a planted up-vote, as in randomized rating experiments): they count in its social
    proof and in popularity ranking, not in its `like` count."""

    id: Annotated[str, Field(min_length=1)]
    text: Annotated[str, Field(min_length=1)]
    topic: str | None = None
    author: AuthorSpec = Field(default_factory=AuthorSpec)
    step: NonNegativeInt = 0
    p: Probability | None = None
    initial_likes: NonNegativeInt = 0

    @field_validator("text")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text is blank")
        return v


class PostBatchSpec(Strict):
    """`posts` posts at once. Post i (0, 1, ...) gets the id `id` with {i} replaced by i, and the text `text`
    (with {i} replaced), or `texts[i]`, or line i of the UTF-8 file `text_file` (blank lines skipped); a list or
    file shorter than `posts` is used again from its start. Each post draws its own authors by `author`, and under
    the independent_cascade backend its own share probability `p`: a number, or a distribution
    ({distribution: beta, a, b} or {distribution: uniform, low, high}) from which each post draws one. Each post
    shows `initial_likes` planted likes when it enters (see a single post's `initial_likes`)."""

    posts: PositiveInt
    id: str = "post-{i}"
    text: str | None = None
    texts: list[Annotated[str, Field(min_length=1)]] | None = None
    text_file: Path | None = None
    topic: str | None = None
    author: AuthorSpec = Field(default_factory=AuthorSpec)
    step: NonNegativeInt = 0
    p: Activity | None = None
    initial_likes: NonNegativeInt = 0

    @field_validator("id")
    @classmethod
    def _numbered(cls, v: str) -> str:
        if "{i}" not in v:
            raise ValueError("must contain {i} (the post's number), e.g. 'news-{i}'")
        return v

    @model_validator(mode="after")
    def _one_text_source(self):
        given = [name for name in ("text", "texts", "text_file") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of text (a template with {{i}}), texts (a list) or text_file; got {given or 'none'}")
        if self.text is not None and not self.text.strip():
            raise ValueError("text is blank")
        if self.texts is not None and not self.texts:
            raise ValueError("texts is empty")
        return self

    def ids(self) -> list[str]:
        return [self.id.replace("{i}", str(i)) for i in range(self.posts)]


def _content_kind(entry: Any) -> str:
    """A content entry with a `posts` count makes many posts; any other is one hand-written post."""
    if isinstance(entry, dict):
        return "batch" if "posts" in entry else "post"
    return "batch" if isinstance(entry, PostBatchSpec) else "post"


ContentEntry = Annotated[
    Union[Annotated[PostSpec, Tag("post")], Annotated[PostBatchSpec, Tag("batch")]], Discriminator(_content_kind)
]


# -------------------------------------------------------------------------------------------------- posting


class ColumnRate(Strict):
    """A per-person rate read from a column of the persona CSV (`population.path`)."""

    column: Annotated[str, Field(min_length=1)]


PostingRate = Union[
    Probability, Annotated[Union[BetaActivity, UniformActivity], Field(discriminator="distribution")], ColumnRate
]


class PostingSpec(Strict):
    """People post. `rate`: the probability that a person posts in a step (a number, a distribution drawn once
    per person, or `{column: NAME}` of the persona CSV). `pool`: a CSV, Parquet or JSONL file of texts to post,
    read from its `text_column` (default `text`) and optional `topic_column` (default `topic`; a real data set's
    own names, e.g. `title` and `subreddit`, work as they are). `interest`: how strongly a person's interests steer
    which text they post (persona-text similarity times `interest` is the log-weight; 0 is a uniform choice)."""

    rate: PostingRate
    pool: Path
    text_column: str = "text"
    topic_column: str | None = "topic"
    interest: Annotated[float, Field(ge=0)] = 25.0


# ----------------------------------------------------------------------------------------------------- feed


class FeedSpec(Strict):
    """Who sees what. `all`: every new share of a followee, no cap (the independent-cascade feed);
    `chronological`: newest first; `popularity`: most engaged posts first; `random`: shuffled.
    `size`: how many posts an online person looks at per step (null = no cap). `max_age`: steps after which an
    unseen share drops out of a feed (null = never). `hidden_shares`: the share of (person, post) pairs for which
    the shares of the accounts the person follows never reach their feed, nor count as friends who shared (a
    randomized holdout, as in Bakshy et al. 2012); a pair is held out by a hash of the seed, the person and the
    post (`lsbm_sim.engine.feed.held_out`), so no other random draw moves and an analysis can tell the pairs apart."""

    policy: Literal["all", "chronological", "popularity", "random"] = "chronological"
    size: PositiveInt | None = 10
    max_age: PositiveInt | None = None
    hidden_shares: Probability = 0.0
    # Out-of-network recommendations (lsbm_sim/engine/recommend.py): `recommender` is none, interest, popularity,
    # random or "module:Class"; `out_of_network` the share of the feed's slots it fills; `candidate_age` the
    # steps a post stays recommendable.
    recommender: str = "none"
    out_of_network: Probability = 0.3
    candidate_age: PositiveInt = 24

    @model_validator(mode="after")
    def _recommender(self):
        if self.recommender not in ("none", "interest", "popularity", "random") and ":" not in self.recommender:
            raise ValueError(
                f"recommender {self.recommender!r}: none, interest, popularity, random or 'module:Class'"
            )
        if self.recommender != "none" and (self.size is None or self.policy == "all"):
            raise ValueError("a recommender needs a feed with a size (feed.size) and a policy other than 'all'")
        return self


# ----------------------------------------------------------------------------------------------------- time


class TimeSpec(Strict):
    """How long a step lasts in real time. `step_minutes`: minutes per step (default 60). A post's age reaches the
    behavior model in minutes, and every time column of the results (half times) comes in minutes, so runs with
    different step lengths compare with each other and with real cascades."""

    step_minutes: Annotated[float, Field(gt=0, le=10080)] = 60.0


# -------------------------------------------------------------------------------------------------- results


class ResultsSpec(Strict):
    """What a run keeps. `events`: `all` (one row per exposure), `engaged` (only exposures that were not
    ignored) or `none`; the per-step and per-post tables are always kept. At a million people a run has tens of
    millions of exposures: the log is streamed to the results folder in row groups, whichever is chosen."""

    events: Literal["all", "engaged", "none"] = "all"


# ------------------------------------------------------------------------------------------------- behavior

Backend = Literal["surrogate", "independent_cascade", "linear_threshold", "constant", "hf", "vllm", "openai"]


class FullPromptSpec(Strict):
    """Who is still asked with the full prompt in a hybrid population: `share` of the people, the most followed
    or a random sample (seeded by the scenario's seed)."""

    share: Annotated[float, Field(gt=0.0, le=1.0)]
    select: Literal["most_followed", "random"] = "most_followed"


class FactorizedSpec(Strict):
    """The hf backend's language model reads each text once and a distilled head answers (behavior/factorized.py):
    `head` is the head file (`lsbm-sim distill --student factorized`); `full_prompt` makes the population hybrid."""

    head: Path
    full_prompt: FullPromptSpec | None = None



class BehaviorSpec(Strict):
    """Which behavior model answers, and its settings. Fields that a backend does not read must stay unset."""

    backend: Backend = "surrogate"
    reactions: list[str] = Field(default_factory=lambda: list(DEFAULT_REACTIONS))
    # independent_cascade / constant
    p: Probability | None = None
    probabilities: dict[str, Probability] | None = None
    # surrogate: a fitted or distilled head (JSON) instead of the documented default coefficients, and partial
    # overrides of either ({share: {intercept: -5.1, sharers: 0.3}}), so that calibration can reach them
    head: Path | None = None
    coefficients: dict[str, dict[str, float]] | None = None
    # language-model backends
    model: str | None = None
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    batch_tokens: PositiveInt = 32768
    prompt: str = "default"
    temperature: Annotated[float, Field(gt=0)] = 1.0
    scoring: Literal["first_token", "full"] = "first_token"
    trust_remote_code: bool = False
    allow_pickle: bool = False
    # hf: text vectors and a small head instead of one prompt per question (`scoring` then applies to the
    # full-prompt people of a hybrid population)
    factorized: FactorizedSpec | None = None
    # openai-compatible servers
    base_url: str | list[str] | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: PositiveInt = 8
    timeout: Annotated[float, Field(gt=0)] = 60.0
    retries: NonNegativeInt = 3
    # the broker: a persistent cache of answers shared across runs (SQLite file), or null for memory only
    cache: Path | None = None

    @field_validator("reactions")
    @classmethod
    def _reactions(cls, v: list[str]) -> list[str]:
        if len(v) < 2:
            raise ValueError("needs at least two reactions")
        if len(set(v)) != len(v):
            raise ValueError(f"has duplicates: {v}")
        if "ignore" not in v:
            raise ValueError("must include 'ignore'")
        return v

    @model_validator(mode="after")
    def _backend_needs(self):
        if self.backend == "independent_cascade" and self.p is None:
            raise ValueError("backend 'independent_cascade' needs behavior.p (the share probability)")
        if self.backend == "independent_cascade" and "share" not in self.reactions:
            raise ValueError("backend 'independent_cascade' needs 'share' among behavior.reactions")
        if self.backend == "constant":
            if self.probabilities is None:
                raise ValueError("backend 'constant' needs behavior.probabilities (reaction: probability)")
            unknown = set(self.probabilities) - set(self.reactions)
            if unknown:
                raise ValueError(f"behavior.probabilities names unknown reactions {sorted(unknown)}")
            if sum(self.probabilities.values()) > 1 + 1e-9:
                raise ValueError("behavior.probabilities sum to more than 1")
        if self.backend in ("hf", "vllm", "openai") and not self.model:
            raise ValueError(f"backend {self.backend!r} needs behavior.model")
        if self.factorized is not None and self.backend != "hf":
            raise ValueError(f"behavior.factorized is read only by 'hf' (it needs the model's hidden states), not {self.backend!r}")
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend 'openai' needs behavior.base_url")
        if self.p is not None and self.backend != "independent_cascade":
            raise ValueError(f"behavior.p is read only by 'independent_cascade', not {self.backend!r}")
        if self.coefficients is not None:
            self._check_coefficients()
        return self

    def _check_coefficients(self) -> None:
        if self.backend != "surrogate":
            raise ValueError(f"behavior.coefficients is read only by 'surrogate', not {self.backend!r}")
        for reaction, coefficients in self.coefficients.items():
            if reaction == "ignore" or reaction not in self.reactions:
                known = [r for r in self.reactions if r != "ignore"]
                raise ValueError(f"behavior.coefficients.{reaction}: not a reaction with coefficients (known: {', '.join(known)})")
            for feature in coefficients:
                if feature != "intercept" and feature not in SURROGATE_FEATURES:
                    raise ValueError(f"behavior.coefficients.{reaction}.{feature}: not a coefficient "
                                     f"(known: intercept, {', '.join(SURROGATE_FEATURES)})")  # fmt: skip


# -------------------------------------------------------------------------------------------- interventions


class InjectIntervention(Strict):
    """Put a new post into the simulation at `step` (its own `step` field is ignored)."""

    kind: Literal["inject"]
    step: NonNegativeInt
    post: PostSpec


class RemoveIntervention(Strict):
    """Take a post out of every feed from `step` on; no one is shown it again."""

    kind: Literal["remove"]
    step: NonNegativeInt
    item: str


class LabelIntervention(Strict):
    """Attach a label (a fact-check warning, say) that every later viewer of the post sees."""

    kind: Literal["label"]
    step: NonNegativeInt
    item: str
    text: Annotated[str, Field(min_length=1)]


class PromoteIntervention(Strict):
    """Put a post into `k` random people's feeds, ahead of what their friends shared."""

    kind: Literal["promote"]
    step: NonNegativeInt
    item: str
    k: PositiveInt


Intervention = Annotated[
    Union[InjectIntervention, RemoveIntervention, LabelIntervention, PromoteIntervention],
    Field(discriminator="kind"),
]


# ------------------------------------------------------------------------------------------------- scenario


class Scenario(Strict):
    """A whole simulation setup. Load with `Scenario.from_yaml(path)`; every field has a documented default
    except `content`."""

    name: str = "scenario"
    description: str = ""
    question: str = ""  # what a run answers (`lsbm-sim run` ends with it); default: the description's questions
    seed: NonNegativeInt = 0
    steps: PositiveInt = 24
    population: PopulationSpec = Field(default_factory=PopulationSpec)
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    content: list[ContentEntry] = Field(default_factory=list)
    posting: PostingSpec | None = None
    feed: FeedSpec = Field(default_factory=FeedSpec)
    time: TimeSpec = Field(default_factory=TimeSpec)
    behavior: BehaviorSpec = Field(default_factory=BehaviorSpec)
    interventions: list[Intervention] = Field(default_factory=list)
    results: ResultsSpec = Field(default_factory=ResultsSpec)

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @model_validator(mode="after")
    def _consistent(self):
        posted_at: dict[str, int] = {}
        for pid, step in [(pid, entry.step) for entry in self.content for pid in _entry_ids(entry)] + [
            (i.post.id, i.step) for i in self.interventions if i.kind == "inject"
        ]:
            if pid in posted_at:
                raise ValueError(f"post id {pid!r} is used twice")
            posted_at[pid] = step
        seen = set(posted_at)
        for k, post in enumerate(self.content):
            if post.step >= self.steps:
                raise ValueError(f"content[{k}].step: {post.step} is not before the last step (steps = {self.steps})")
            if post.p is not None and self.behavior.backend != "independent_cascade":
                raise ValueError(f"content[{k}].p: read only by the independent_cascade backend, not {self.behavior.backend!r}")
        for k, iv in enumerate(self.interventions):
            if iv.step >= self.steps:
                raise ValueError(f"interventions[{k}].step: {iv.step} is not before the last step (steps = {self.steps})")
            if iv.kind != "inject" and iv.item not in seen:
                raise ValueError(f"interventions[{k}].item: no post with id {iv.item!r}")
            if iv.kind == "promote" and iv.step < posted_at[iv.item]:
                raise ValueError(
                    f"interventions[{k}].step: {iv.item!r} is promoted at step {iv.step}, before it is posted "
                    f"(step {posted_at[iv.item]})"
                )
        if not self.content and self.posting is None:
            raise ValueError("content: needs at least 1 post, unless people post (a `posting` section)")
        if self.population.size is None and self.population.path is None and self.network.kind not in FILE_KINDS:
            raise ValueError("population.size is required unless the network or the personas come from a file")
        return self

    # ---------------------------------------------------------------------------------------- loading

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in this scenario resolve against (the scenario file's folder)."""
        return self._base_dir

    def resolve(self, path: Path | str) -> Path:
        """A scenario path made absolute against the scenario file's folder."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else (self._base_dir / path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], base_dir: Path | str | None = None, source: str = "scenario") -> Scenario:
        """Validate a plain dict; errors become one ScenarioError naming every bad field."""
        try:
            scenario = cls.model_validate(data)
        except ValidationError as exc:
            raise ScenarioError(format_validation_error(exc, source)) from None
        scenario._base_dir = Path(base_dir).resolve() if base_dir is not None else Path.cwd()
        return scenario

    @classmethod
    def from_yaml(cls, path: Path | str, overrides: list[str] | tuple[str, ...] = ()) -> Scenario:
        """Read a scenario file, apply `--set`-style overrides ("feed.size=5"), validate."""
        path = Path(path)
        data = read_yaml(path)
        apply_overrides(data, overrides)
        return cls.from_dict(data, base_dir=path.resolve().parent, source=str(path))

    def with_overrides(self, overrides: list[str] | tuple[str, ...]) -> Scenario:
        """A copy with `--set`-style overrides applied."""
        data = self.model_dump(mode="json", exclude_unset=False)
        apply_overrides(data, overrides)
        return Scenario.from_dict(data, base_dir=self._base_dir, source=self.name)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def _entry_ids(entry: PostSpec | PostBatchSpec) -> list[str]:
    return entry.ids() if isinstance(entry, PostBatchSpec) else [entry.id]


class DuplicateKeyError(yaml.YAMLError):
    """A key given twice in one YAML mapping (PyYAML would silently keep the second)."""

    def __init__(self, key: Any, line: int):
        super().__init__(f"duplicate key {key!r} on line {line}")
        self.key, self.line = key, line


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error instead of the last one
    winning (a scenario with two `feed:` blocks would otherwise run with only the second)."""

    def construct_mapping(self, node, deep=False):
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key; the base class reports it
                break
            if duplicate:
                raise DuplicateKeyError(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path, kind: str = "scenario", fields: str = "name, steps, population, ...") -> dict[str, Any]:
    """The mapping a YAML file holds (a scenario, or a replication: `kind`), or one ScenarioError naming the file
    and line: missing, not YAML, a key given twice, not UTF-8, not a mapping of `fields`."""
    if not path.is_file():
        raise ScenarioError(f"{path}: {kind} file not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)  # noqa: S506 (a safe loader)
    except DuplicateKeyError as exc:
        raise ScenarioError(f"{path}: line {exc.line}: {exc.key!r} is given twice (the second would silently win)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ScenarioError(f"{path}:{where} not valid YAML: {getattr(exc, 'problem', exc)}") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not a UTF-8 text file") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a {kind} is a mapping of fields ({fields})")
    return data


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line per bad field: 'source: population.size: Input should be greater than 0 (got -5)'."""
    # A union (activity: a number or a distribution) reports one error per member. The path parts that name a
    # member ("tagged-union[...]", "constrained-float") are dropped; a member whose type did not match at all is
    # dropped when another member says something more specific; then one message per field is kept.
    errors = []
    for err in exc.errors(include_url=False):
        loc = tuple(str(p) for p in err["loc"] if not _names_union_member(str(p)))
        errors.append((loc, err))
    specific = [loc for loc, err in errors if not _is_type_mismatch(err)]
    by_path: dict[str, str] = {}
    for loc, err in errors:
        if _is_type_mismatch(err) and any(other[: len(loc)] == loc for other in specific):
            continue
        path = ".".join(loc)
        if not path.isprintable():  # a key with a control character would otherwise break the line
            path = path.encode("unicode_escape").decode("ascii")
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "missing":
            msg = "required field is missing"
        got = err.get("input")
        shown = "" if err["type"] in ("missing", "extra_forbidden") or isinstance(got, (dict, list)) else f" (got {got!r})"
        # Whole-scenario checks (a post id used twice, say) name their fields in the message itself.
        by_path.setdefault(path, f"{source}: {path + ': ' if path else ''}{msg}{shown}")
    return "\n".join(by_path.values())


def _names_union_member(part: str) -> bool:
    return "[" in part or part in {
        "inject", "remove", "label", "promote", "beta", "uniform", "float", "constrained-float", "post", "batch"
    }


def _is_type_mismatch(err: dict[str, Any]) -> bool:
    return err["type"].endswith("_type") or err["type"] == "model_attributes_type"


# ------------------------------------------------------------------------------------------------ overrides


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> None:
    """Apply "dotted.path=value" overrides in place. Values are read as YAML ("5" -> 5, "null" -> None).
    A relative file path (network.path, population.path, behavior.head, ...) resolves against the working
    directory, as on any command line; paths written in the scenario file resolve against its folder.

    The path must name a field of the schema (or an entry of a free-form mapping such as network.params, or an
    index of a list such as content.0.text); anything else is a ScenarioError naming the path.
    """
    for item in overrides:
        if "=" not in item:
            raise ScenarioError(f"--set {item!r}: expected PATH=VALUE, e.g. feed.size=5")
        dotted, raw = item.split("=", 1)
        dotted = dotted.strip()
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        _set_path(data, dotted, value)


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    if not dotted or any(not p for p in parts):
        raise ScenarioError(f"--set {dotted!r}: not a dotted field path")
    node: Any = data
    schema: Any = Scenario
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ScenarioError(f"--set {dotted}: {where!r} is not an index of a list of {len(node)}")
            index = int(part)
            schema = _list_item_schema(schema, node[index])
            if last:
                node[index] = value
                return
            node = node[index]
            continue
        if not isinstance(node, dict):
            raise ScenarioError(f"--set {dotted}: {'.'.join(parts[:depth])!r} is not a mapping")
        if schema is not None:
            fields = schema.model_fields
            if part not in fields:
                raise ScenarioError(
                    f"--set {dotted}: {where!r} is not a scenario field (known here: {', '.join(fields)})"
                )
            if last and _holds_path(fields[part].annotation):
                value = _from_working_directory(value)
            schema = _field_model(fields[part].annotation)
        if last:
            node[part] = value
            return
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        node = child


def _holds_path(annotation: Any) -> bool:
    """A file path field (Path, or Path | None)."""
    return annotation is Path or any(_holds_path(arg) for arg in get_args(annotation))


def _from_working_directory(value: Any) -> Any:
    """A relative path typed on the command line means a file seen from where the command runs, not from the
    scenario's folder: make it absolute here, before the scenario resolves the paths its file names."""
    if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
        return str(Path.cwd() / value)
    return value


def _field_model(annotation: Any) -> Any:
    """The pydantic model a field holds (for path checking), a list marker, or None for free-form values."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = get_origin(annotation)
    if origin is list:
        return ("list", get_args(annotation)[0])
    if origin in (Union, Annotated, types.UnionType):
        for arg in get_args(annotation):
            found = _field_model(arg)
            if found is not None:
                return found
    return None


def _list_item_schema(schema: Any, item: Any) -> Any:
    if not (isinstance(schema, tuple) and schema[0] == "list"):
        return None
    inner = schema[1]
    if get_origin(inner) is Annotated:
        inner = get_args(inner)[0]
    members = [get_args(a)[0] if get_origin(a) is Annotated else a for a in get_args(inner)]
    members = [a for a in members if isinstance(a, type) and issubclass(a, BaseModel)]
    if PostBatchSpec in members and isinstance(item, dict):
        return PostBatchSpec if _content_kind(item) == "batch" else PostSpec
    if len(members) > 1 and isinstance(item, dict):
        # A tagged union (interventions): the member is the one whose `kind` matches the item's.
        for member in members:
            kind = member.model_fields.get("kind")
            if kind is not None and item.get("kind") in get_args(kind.annotation):
                return member
        return None
    return _field_model(inner)


def load_scenario(scenario: Scenario | str | Path, overrides: Sequence[str] = ()) -> Scenario:
    """A scenario from a YAML file, a shipped scenario's name (`lsbm-sim scenarios`) or an object, with `--set`
    style overrides applied."""
    from lsbm_sim.catalog import find_scenario

    if isinstance(scenario, Scenario):
        return scenario.with_overrides(overrides) if overrides else scenario
    return Scenario.from_yaml(find_scenario(scenario), overrides=overrides)
