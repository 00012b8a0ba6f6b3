"""The simulation: a Mesa model whose step is the story of one round of social media.

    0. post      hand-listed posts enter at their step; people write posts from the scenario's pool
    1. activate  who is online (each person's activity rate)
    2. expose    each online person's feed shows up to feed.size posts their followees shared (or promoted ones),
                 and a recommender fills a share of the slots with posts from outside their follows
    3. decide    every exposure is one question; the broker asks the behavior model once for the whole step
    4. sample    one reaction per exposure, drawn from the model's probabilities with a seeded generator
    5. apply     likes and comments add social proof; a share puts the post into the sharer's followers' feeds
    6. collect   Mesa's DataCollector records the step; the event log gets one row per exposure

State lives in arrays owned by the model (struct of arrays): a step costs array operations, not a Python call
per person. `UserAgent`s in `model.agents` are real Mesa agents that read those arrays, made when first asked
for unless their class has hooks or its own `__init__` (the step never needs them).

Randomness comes from one seed split into named streams (population, network, authors, activity, feed,
sampling, ...), so that, e.g., a change of feed policy does not shift the reactions' random numbers, and the
event log does not depend on how the broker batched or cached its questions.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import mesa
import numpy as np
from mesa.agent import AgentSet

from lsbm_sim.engine import checkpoint, interrupts
from lsbm_sim.engine.agents import UserAgent
from lsbm_sim.behavior import BehaviorModel, Broker, make_behavior_model
from lsbm_sim.behavior.base import AGE_BINS, PROOF_BINS, SEEN_BINS, SHARER_BINS, QueryBatch, bin_value
from lsbm_sim.world.content import Post, expand_content, make_post
from lsbm_sim.engine.feed import PROMOTED, Exposures, Inbox, held_out
from lsbm_sim.world.posting import make_posting
from lsbm_sim.engine.recommend import make_recommender
from lsbm_sim.analysis.results import EventLog
from lsbm_sim.scenario import PostSpec, Scenario, load_scenario
from lsbm_sim.engine.state import ENGAGED, EXPOSED, SHARED, PairState, StatusView  # noqa: F401 (the bits, re-exported)
from lsbm_sim.analysis.tables import ResultTables
from lsbm_sim.world.build import build_world, stream_seeds


class SocialModel(ResultTables, mesa.Model):
    """A population on a follow graph reacting to posts as a behavior model predicts.

    >>> model = SocialModel("scenarios/eco_product_launch.yaml", seed=7)  # doctest: +SKIP
    >>> model.run()  # doctest: +SKIP
    >>> model.result().items  # doctest: +SKIP

    `behavior`: a BehaviorModel to use instead of the scenario's. `agent_class`: a UserAgent subclass.
    `events_path`: stream the event log to this Parquet file instead of keeping it in memory.
    `checkpoint_dir`, `checkpoint_every`: save the state there every K steps (see `lsbm_sim.engine.checkpoint`).
    """

    def __init__(
        self,
        scenario: Scenario | str | Path,
        seed: int | None = None,
        overrides: Sequence[str] = (),
        behavior: BehaviorModel | None = None,
        agent_class: type[UserAgent] = UserAgent,
        events_path: Path | None = None,
        checkpoint_dir: Path | None = None,
        checkpoint_every: int | None = None,
    ):
        scenario = load_scenario(scenario, overrides)
        seed = scenario.seed if seed is None else int(seed)
        super().__init__(seed=seed)
        self.scenario = scenario
        self.seed = seed
        self.timings: dict[str, float] = {}
        started = time.perf_counter()
        self._streams = stream_seeds(seed)
        self._generators: dict[str, np.random.Generator] = {}

        self.population, self.network = build_world(scenario, self.stream)
        n = self.population.size
        self.num_agents = n

        # Posts: everything the scenario will post, so that item numbers are fixed from the start.
        self._schedule: list[tuple[int, PostSpec, str]] = [
            (p.step, p, field) for p, field in expand_content(scenario, self.stream("content"))
        ] + [
            (iv.step, iv.post, f"interventions[{k}].post")
            for k, iv in enumerate(scenario.interventions)
            if iv.kind == "inject"
        ]
        self.item_ids = [spec.id for _, spec, _ in self._schedule]
        self.item_texts = [spec.text for _, spec, _ in self._schedule]
        self.item_index = {pid: i for i, pid in enumerate(self.item_ids)}
        # Authors are chosen now, so that a post naming a node that does not exist fails before the first step.
        self.posts: dict[int, Post] = {
            index: make_post(spec, index, step, field, self.population, self.network, self.stream("authors"))
            for index, (step, spec, field) in enumerate(self._schedule)
        }
        n_items = len(self.item_ids)
        self.item_topics: list[str | None] = [spec.topic for _, spec, _ in self._schedule]
        self._entering: dict[int, list[int]] = {}  # step -> the scheduled posts that enter then
        for index, (step, _, _) in enumerate(self._schedule):
            self._entering.setdefault(step, []).append(index)

        # Model-owned state (struct of arrays). Per-post arrays grow as people post (see `_add_posts`).
        self.state = PairState(n)  # per-(post, person) facts, for the pairs that happened
        self.status = StatusView(self.state, lambda: len(self.item_ids))
        self.removed = np.zeros(n_items, dtype=bool)
        self.retired = np.zeros(n_items, dtype=bool)  # no one can be shown it any more (people's posts only)
        self.entered = np.full(n_items, -1, dtype=np.int32)
        self.label_of = np.zeros(n_items, dtype=np.int32)
        self.labels: list[str] = [""]
        self.item_reach = np.zeros(n_items, dtype=np.int64)
        self.item_impressions = np.zeros(n_items, dtype=np.int64)
        # Planted likes (`initial_likes`): social proof and popularity from no one, kept apart from the likes people give.
        self.initial_likes = np.array([getattr(spec, "initial_likes", 0) for _, spec, _ in self._schedule], dtype=np.int64)
        self.first_author = np.array([self.posts[i].authors[0] for i in range(n_items)], dtype=np.int32)
        self._exposure_tally = Tally(n)
        self.inbox = Inbox()
        self._cascade: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # item, agent, parent, step

        # The behavior model and its broker.
        self.behavior = behavior if behavior is not None else make_behavior_model(scenario.behavior, scenario)
        self.reactions = tuple(self.behavior.reactions)
        if "ignore" not in self.reactions:
            raise ValueError(f"the behavior model's reactions {self.reactions} lack 'ignore'")
        self.share_index = self.reactions.index("share") if "share" in self.reactions else -1
        self.item_reaction_counts = {r: np.zeros(n_items, dtype=np.int64) for r in self.reactions if r != "ignore"}
        self.posting = make_posting(scenario, self.population, self.behavior, self.stream)
        self.recommender = make_recommender(scenario, self)
        self._reaction_tallies = {r: Tally(n) for r in self.reactions if r != "ignore"}
        cache = scenario.resolve(scenario.behavior.cache) if scenario.behavior.cache is not None else None
        self.broker = Broker(self.behavior, cache_path=cache)

        # Mesa agents: the user's handle on each person. The step reads arrays, not agents, so agents whose class
        # adds nothing to UserAgent's construction and has no hooks are made when first asked for
        # (`model.agents`, `agents_by_type`, ...): at a million people making them is most of the setup.
        if agent_class.__init__ is UserAgent.__init__ and not any(_overrides(agent_class, h) for h in HOOKS):
            self._pending_agents = (agent_class, n)
        else:
            self._agent_list = self._create_agents(agent_class, n)
        self._hooked = {
            hook: np.arange(n, dtype=np.int64) if _overrides(agent_class, hook) else np.zeros(0, dtype=np.int64)
            for hook in HOOKS
        }
        if hasattr(self.behavior, "bind"):
            self.behavior.bind(self)

        self.checkpoint_dir, self.checkpoint_every = checkpoint_dir, checkpoint_every
        segments = checkpoint_dir / checkpoint.SEGMENTS if checkpoint_dir is not None else None
        self.events = EventLog(self.reactions, self.item_ids, path=events_path, keep=scenario.results.events,
                               segments=segments)  # fmt: skip
        self._last: dict[str, int] = {}
        self.steps_completed = 0
        self.datacollector = mesa.DataCollector(
            model_reporters={
                "step": lambda m: m.steps - 1,
                "online": lambda m: m._last["online"],
                "exposures": lambda m: m._last["exposures"],
                **{r: (lambda m, r=r: m._last[r]) for r in self.reactions},
                "new_reach": lambda m: m._last["new_reach"],
                "reach": lambda m: int(m.item_reach.sum()),
                "pending": lambda m: len(m.inbox),
                "distinct_queries": lambda m: m._last["distinct_queries"],
            }
        )
        if checkpoint_dir is not None and checkpoint_every:
            checkpoint.check(self)  # state that cannot be saved is refused now, not at the first checkpoint
        self.timings["setup_seconds"] = time.perf_counter() - started
        for phase in ("enter", "activate", "expose", "decide", "sample", "apply", "collect"):
            self.timings[f"{phase}_seconds"] = 0.0

    # ----------------------------------------------------------------------------------------------- helpers

    _always_online: bool | None = None  # everyone's activity is 1 (decided on the first step)
    _deferred: list[mesa.Agent] | None = None  # agents made but not yet registered with Mesa (see _create_agents)
    _pending_agents: tuple[type[UserAgent], int] | None = None  # agents not made yet: (class, how many)
    _agent_list: list[UserAgent]

    def _make_pending_agents(self) -> None:
        """Make the agents a run has not needed so far, exactly as they would have been made at setup."""
        if self._pending_agents is not None:
            agent_class, n = self._pending_agents
            self._pending_agents = None
            self._agent_list = self._create_agents(agent_class, n)

    # Mesa's views of the agents, each making them first if they are still pending.
    @property
    def agents(self) -> AgentSet:
        self._make_pending_agents()
        return super().agents

    @property
    def agents_by_type(self) -> dict[type[mesa.Agent], AgentSet]:
        self._make_pending_agents()
        return super().agents_by_type

    @property
    def agent_types(self) -> list[type]:
        self._make_pending_agents()
        return super().agent_types

    def remove_all_agents(self) -> None:
        self._make_pending_agents()
        super().remove_all_agents()

    def _create_agents(self, agent_class: type[UserAgent], n: int) -> list[UserAgent]:
        """Make the n Mesa agents, each by its class's own `__init__`, and register them with Mesa in bulk.

        Mesa registers an agent as its `__init__` runs: a dict entry, an entry in two weak-keyed AgentSets
        (all agents; agents of its type) and a debug message formatted whether or not it is logged. At a
        million agents that, with `create_agents`' own AgentSet, was most of the model's setup. Here the
        registrations wait until all agents exist and are then made in one pass each, ending in the state Mesa
        would have reached: the same agents, in the same order, in `model.agents` and `agents_by_type`. (An
        agent's `__init__` that looked at `model.agents` would not yet see the agents made before it.)
        """
        self._deferred = []
        try:
            agents = [agent_class(self, agent_id=i) for i in range(n)]
        finally:
            deferred, self._deferred = self._deferred, None
        self._register_many(deferred)
        return agents

    def register_agent(self, agent: mesa.Agent) -> None:
        if self._deferred is not None:
            self._deferred.append(agent)
        else:
            self._make_pending_agents()  # an agent added by hand comes after the model's own, as it would
            super().register_agent(agent)

    def _register_many(self, agents: list[mesa.Agent]) -> None:
        """What `mesa.Model.register_agent` does for each agent, done for many at once (Mesa 3.3's structures)."""
        everyone = getattr(self._all_agents, "_agents", None)
        if not isinstance(getattr(self, "_agents", None), dict) or everyone is None:
            for agent in agents:  # a Mesa whose registry looks different: register one by one, as it would
                super().register_agent(agent)
            return
        self._agents.update(dict.fromkeys(agents))
        by_type: dict[type, list[mesa.Agent]] = {}
        for agent in agents:
            by_type.setdefault(type(agent), []).append(agent)
        for cls, group in by_type.items():
            if cls in self._agents_by_type:
                self._agents_by_type[cls]._agents.update(dict.fromkeys(group))
            else:
                self._agents_by_type[cls] = AgentSet(group, random=self.random)
        everyone.update(dict.fromkeys(agents))

    def stream(self, name: str) -> np.random.Generator:
        """The named random stream (population, network, authors, activity, feed, sampling, ...)."""
        if name not in self._generators:
            if name not in self._streams:
                self._streams[name] = np.random.SeedSequence(
                    [self.seed, int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")]
                )
            self._generators[name] = np.random.default_rng(self._streams[name])
        return self._generators[name]

    def _timed(self, phase: str, started: float) -> float:
        now = time.perf_counter()
        self.timings[f"{phase}_seconds"] += now - started
        return now

    # -------------------------------------------------------------------------------------------- the step

    def step(self) -> None:
        t = self.steps - 1  # Mesa counts steps from 1 and increments before calling step()
        clock = time.perf_counter()
        self._enter_posts(t)
        self._intervene(t)
        self._retire_unseeable(t)
        clock = self._timed("enter", clock)

        online = self._online()
        clock = self._timed("activate", clock)

        feed = self.scenario.feed
        slots = self.recommender.slots if self.recommender is not None else 0
        exposures = self.inbox.select(
            online=online,
            engaged=self.state.engaged,
            removed=self.removed,
            policy=feed.policy,
            size=None if feed.size is None else feed.size - slots,
            step=t,
            max_age=feed.max_age,
            popularity=self.item_engagement(),
            rng=self.stream("feed"),
        )
        if self.recommender is not None:
            exposures = self.recommender.add_recommendations(exposures, online, t, self.stream("recommend"))
        clock = self._timed("expose", clock)

        unique_before = self.broker.stats.unique_queries
        probs = self.broker.decide(self.queries(exposures, t))
        clock = self._timed("decide", clock)

        # One uniform number per exposure, in the exposures' canonical order (person, feed position): the
        # draw does not depend on how the broker grouped the questions.
        uniform = self.stream("sampling").random(len(exposures))
        reaction = sample_reactions(probs, uniform)
        clock = self._timed("sample", clock)

        new_reach = self._apply(exposures, reaction, t)
        clock = self._timed("apply", clock)

        self.events.append(t, exposures.agent, exposures.item, exposures.sharer, exposures.rank, reaction, probs)
        counts = np.bincount(reaction, minlength=len(self.reactions))
        self._last = {
            "online": self.num_agents if online is None else int(np.count_nonzero(online)),
            "exposures": len(exposures),
            "new_reach": new_reach,
            "distinct_queries": self.broker.stats.unique_queries - unique_before,
            **{r: int(c) for r, c in zip(self.reactions, counts)},
        }
        self.datacollector.collect(self)
        self.steps_completed = t + 1
        if t + 1 >= self.scenario.steps:
            self.running = False
        self._timed("collect", clock)

    def item_engagement(self) -> np.ndarray:
        """Likes (planted ones too), shares and comments so far, per post."""
        return sum(self.item_reaction_counts.values(), self.initial_likes.copy())

    def _online(self) -> np.ndarray | None:
        """Who is online this step: each person with probability equal to their activity (None: everyone)."""
        if self._always_online is None:
            # random() < 1 always holds: with everyone's activity at 1 (the classic models) the draw decides
            # nothing, and skipping it saves a million random numbers a step (no other draw comes from this
            # stream, so nothing else changes).
            self._always_online = bool((self.population.activity >= 1).all())
        if self._always_online:
            return None
        return self.stream("activity").random(self.num_agents) < self.population.activity

    @property
    def agent_exposures(self) -> np.ndarray:
        """Exposures so far, per agent."""
        return self._exposure_tally.values()

    @property
    def agent_reaction_counts(self) -> dict[str, np.ndarray]:
        """Reactions so far, per reaction (ignore aside) and agent."""
        return {r: tally.values() for r, tally in self._reaction_tallies.items()}

    def age_minutes(self, t: int) -> np.ndarray:
        """Each post's age at step t in whole minutes (a post enters at the start of its step)."""
        return np.rint((t - self.entered) * self.scenario.time.step_minutes).astype(np.int64)

    def queries(self, exposures: Exposures, t: int) -> QueryBatch:
        """The behavior-model question of each exposure, as a batch of binned codes."""
        agent, item = exposures.agent, exposures.item
        _, seen, n_sharers = self.state.facts(item, agent)
        proof = sum((c for r, c in self.item_reaction_counts.items() if r != "share"), self.initial_likes.copy())
        # What is the same for every viewer of a post is binned once per post, then looked up per exposure.
        return QueryBatch(
            personas=self.population.personas,
            contents=self.item_texts,
            labels=self.labels,
            dispositions=self.population.dispositions,
            persona_id=self.population.archetype[agent],
            item_id=item,
            label_id=self.label_of[item],
            sharers=binned(n_sharers, SHARER_TABLE),
            proof=bin_value(proof, PROOF_BINS)[item],
            age=bin_value(self.age_minutes(t), AGE_BINS)[item],
            seen=binned(seen, SEEN_TABLE),
            promoted=exposures.sharer == PROMOTED,  # a recommendation (RECOMMENDED) is not an advertisement
            agent_id=agent,
            n_sharers=n_sharers,
        )

    def _share(self, item: np.ndarray, agent: np.ndarray, parent: np.ndarray, t: int) -> None:
        """Agents share posts: they join the cascades and their followers find the posts in their feeds."""
        if len(agent) == 0:
            return
        self.state.mark_shared(item, agent)
        self._cascade.append((item.astype(np.int32), agent.astype(np.int32), parent.astype(np.int32),
                              np.full(len(agent), t, dtype=np.int32)))  # fmt: skip
        owner, follower = self.network.followers_of_many(agent)
        follower_item = item[owner]
        if self.scenario.feed.hidden_shares > 0:
            reached = ~held_out(self.seed, follower, follower_item, self.scenario.feed.hidden_shares)
            owner, follower, follower_item = owner[reached], follower[reached], follower_item[reached]
        # Count, per (post, follower), the followed accounts that shared it (social proof and linear threshold).
        self.state.add_sharers(follower_item, follower)
        waiting = ~self.state.engaged(follower_item, follower)
        self.inbox.add(follower[waiting], follower_item[waiting], agent[owner][waiting], t)

    def _enter_posts(self, t: int) -> None:
        """Hand-listed posts of this step enter, then people post: each author shares their post."""
        items, authors = [], []
        for index in self._entering.get(t, []):
            self.entered[index] = t
            items.append(np.full(len(self.posts[index].authors), index, dtype=np.int32))
            authors.append(self.posts[index].authors)
        if self.posting is not None:
            poster, text = self.posting.draw(self.stream("posting"))
            first = self._add_posts(poster, text, t)
            items.append(np.arange(first, first + len(poster), dtype=np.int32))
            authors.append(poster)
        if items:
            item, author = np.concatenate(items), np.concatenate(authors).astype(np.int32)
            self._share(item, author, np.full(len(author), -1, dtype=np.int32), t)

    def _add_posts(self, authors: np.ndarray, texts: np.ndarray, t: int) -> int:
        """New posts by `authors` (one each) with pool texts `texts`; returns the first new item number."""
        first, k = len(self.item_ids), len(authors)
        pool = self.posting.pool
        for j, (author, text) in enumerate(zip(authors.tolist(), texts.tolist())):
            pid = f"u{author}.s{t}"  # one post per person per step
            self.item_ids.append(pid)  # in place: the event log reads the same list
            self.item_texts.append(pool.texts[text])
            self.item_topics.append(pool.topics[text])
            self.item_index[pid] = first + j
            self.posts[first + j] = Post(first + j, pid, pool.texts[text], pool.topics[text], t,
                                         np.array([author], dtype=np.int32))  # fmt: skip
        self.removed = np.concatenate([self.removed, np.zeros(k, dtype=bool)])
        self.retired = np.concatenate([self.retired, np.zeros(k, dtype=bool)])
        self.entered = np.concatenate([self.entered, np.full(k, t, dtype=np.int32)])
        self.label_of = np.concatenate([self.label_of, np.zeros(k, dtype=np.int32)])
        self.item_reach = np.concatenate([self.item_reach, np.zeros(k, dtype=np.int64)])
        self.item_impressions = np.concatenate([self.item_impressions, np.zeros(k, dtype=np.int64)])
        self.initial_likes = np.concatenate([self.initial_likes, np.zeros(k, dtype=np.int64)])
        self.first_author = np.concatenate([self.first_author, authors.astype(np.int32)])
        for r in self.item_reaction_counts:
            self.item_reaction_counts[r] = np.concatenate([self.item_reaction_counts[r], np.zeros(k, dtype=np.int64)])
        return first

    def _retire_unseeable(self, t: int) -> None:
        """People's posts that no one can be shown any more (in no feed, too old to recommend) leave the active
        state: the pair table drops their entries when it next fills up. Hand-listed posts are few and stay."""
        if self.posting is None:
            return
        first = len(self._schedule)  # posts from here on were written by people
        entered = self.entered[first:]
        alive = ~self.retired[first:] & (entered >= 0)
        in_a_feed = np.bincount(self.inbox.item, minlength=len(self.item_ids))[first:] > 0
        recommendable = (
            t - entered < self.recommender.candidate_age if self.recommender is not None else np.zeros_like(alive)
        )
        gone = np.flatnonzero(alive & ~in_a_feed & ~recommendable) + first
        if len(gone):
            self.retired[gone] = True
            self.state.retire(gone)

    def _intervene(self, t: int) -> None:
        for iv in self.scenario.interventions:
            if iv.step != t or iv.kind == "inject":
                continue
            index = self.item_index[iv.item]
            if iv.kind == "remove":
                self.removed[index] = True
            elif iv.kind == "label":
                if iv.text not in self.labels:
                    self.labels.append(iv.text)
                self.label_of[index] = self.labels.index(iv.text)
            elif iv.kind == "promote":
                if self.entered[index] < 0:
                    raise ValueError(f"promote at step {t}: post {iv.item!r} has not been posted yet")
                candidates = np.flatnonzero((self.state.row(index) & ENGAGED) == 0)
                k = min(iv.k, len(candidates))
                chosen = np.sort(self.stream("interventions").choice(candidates, size=k, replace=False))
                self.inbox.add(chosen.astype(np.int32), index, PROMOTED, t)

    def _apply(self, exposures: Exposures, reaction: np.ndarray, t: int) -> int:
        """Update counters, social proof and cascades; run agent hooks. Returns the step's new reach."""
        agent, item = exposures.agent, exposures.item
        first_time = self.state.expose(item, agent, engaged=reaction != self.reactions.index("ignore"))
        self.item_reach += np.bincount(item[first_time], minlength=len(self.item_ids))
        self.item_impressions += np.bincount(item, minlength=len(self.item_ids))
        self._exposure_tally.add(agent)

        for k, r in enumerate(self.reactions):
            if r == "ignore":
                continue
            chosen = reaction == k
            self.item_reaction_counts[r] += np.bincount(item[chosen], minlength=len(self.item_ids))
            self._reaction_tallies[r].add(agent[chosen])

        if self.share_index >= 0:
            shares = reaction == self.share_index
            sharer = exposures.sharer[shares]
            item_s = item[shares]
            # A promoted or recommended post that is shared hangs off the post's first author in the cascade.
            parent = np.where(sharer < 0, self.first_author[item_s], sharer)
            self._share(item_s, agent[shares], parent, t)

        self._run_hooks(exposures, reaction)
        return int(first_time.sum())

    def _run_hooks(self, exposures: Exposures, reaction: np.ndarray) -> None:
        hooked = self._hooked["on_reaction"]
        if len(hooked):
            rows = np.flatnonzero(np.isin(exposures.agent, hooked))
            for i in rows.tolist():
                sharer = int(exposures.sharer[i])
                self._agent_list[int(exposures.agent[i])].on_reaction(
                    self.item_ids[int(exposures.item[i])], self.reactions[int(reaction[i])],
                    None if sharer < 0 else sharer,
                )  # fmt: skip
        for i in self._hooked["step"].tolist():
            self._agent_list[i].step()

    # ------------------------------------------------------------------------------------------- running

    def run(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Run the remaining steps; `progress(done, total)` is called after each step.

        Under the command's signal handling (`lsbm_sim.engine.interrupts`), Ctrl-C or SIGTERM stops the run at the end
        of the step it arrives in, raising `Interrupted`, so that what is kept is whole steps; with a checkpoint
        folder, the state at that step is saved first, so `--resume` continues from it."""
        total = self.scenario.steps
        with interrupts.deferred():
            while self.running and self.steps < total:
                self.step()
                if progress is not None:
                    progress(self.steps, total)
                # After progress(): a signal that arrives while it runs is still answered with a checkpoint.
                self._save_checkpoint()
                interrupts.raise_if_requested()
        self.running = False

    def _save_checkpoint(self) -> None:
        """Every `checkpoint_every` steps, and at the end of the step a signal arrived in (even the last: the
        resumed run then only writes the results), save the state to the checkpoint folder.

        A save that fails stops a run that asked for checkpoints with `CheckpointError` (one line; the partial
        results are kept); a save a signal asked for that fails still ends as the signal's stop, saying why no
        checkpoint was written."""
        if self.checkpoint_dir is None:
            return
        signalled = interrupts.requested()
        due = self.running and bool(self.checkpoint_every) and self.steps_completed % self.checkpoint_every == 0
        if not (due or signalled):
            return
        try:
            checkpoint.save(self, self.checkpoint_dir)
        except Exception as exc:
            reason = (f"the checkpoint of step {self.steps_completed} could not be saved to {self.checkpoint_dir}/ "
                      f"({type(exc).__name__}: {exc})")  # fmt: skip
            interrupts.raise_if_requested(not_saved=reason)  # a signal is waiting (it may have come during the save)
            raise checkpoint.CheckpointError(reason) from None



def bin_table(bins: np.ndarray) -> np.ndarray:
    """The bins of the counts 0..bins[-1] (every larger count falls in the last bin): `binned` looks them up."""
    return bin_value(np.arange(int(bins[-1]) + 1), bins)


def binned(values: np.ndarray, table: np.ndarray) -> np.ndarray:
    """`bin_value(values, bins)` for non-negative counts, by looking up their `bin_table(bins)` instead of a
    binary search per row."""
    return table[np.minimum(values, len(table) - 1)]


SHARER_TABLE, SEEN_TABLE = bin_table(SHARER_BINS), bin_table(SEEN_BINS)


def sample_reactions(probs: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """The reaction of each row: the first k whose cumulative probability exceeds the row's uniform number
    (the last reaction if rounding leaves the row's total below it).

    Column by column, in float64: the same sums, in the same order, as `np.cumsum(probs, axis=1)`, without
    the strided passes over a narrow matrix.
    """
    last = probs.shape[1] - 1
    reaction = np.zeros(len(uniform), dtype=np.int8)
    cumulative = np.zeros(len(uniform), dtype=np.float64)
    for k in range(last):
        cumulative += probs[:, k]
        reaction += uniform >= cumulative
    return reaction


class Tally:
    """Counts per agent, added to a step at a time.

    A step's exposures are usually far fewer than the people, and adding them into an array of a million
    counts touches a scattered cache line per exposure; instead the steps' agent arrays are kept and folded in
    with one bincount once they hold as many entries as there are agents (or when the counts are read), which
    costs a constant per exposure.
    """

    def __init__(self, n: int):
        self._counts = np.zeros(n, dtype=np.int32)
        self._pending: list[np.ndarray] = []
        self._pending_size = 0

    def add(self, agents: np.ndarray) -> None:
        if len(agents):
            self._pending.append(agents)
            self._pending_size += len(agents)
            if self._pending_size >= len(self._counts):
                self._fold()

    def values(self) -> np.ndarray:
        self._fold()
        return self._counts

    def _fold(self) -> None:
        if self._pending:
            joined = np.concatenate(self._pending)
            self._counts += np.bincount(joined, minlength=len(self._counts)).astype(np.int32)
            self._pending, self._pending_size = [], 0


HOOKS = ("on_reaction", "step")
"""UserAgent's methods the model calls, for the agents of a class that overrides them."""


def _overrides(cls: type, hook: str) -> bool:
    return getattr(cls, hook, None) is not getattr(UserAgent, hook)
