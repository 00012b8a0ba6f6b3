"""Per-(post, person) state: peak memory as posts grow at a fixed population, and the look-up that chose the
state's structure.

memory   a scenario with P hand-listed posts (random authors, entering over the first steps) at N people, run in a
         fresh process per P: peak resident memory, the state table's own size, exposures. The posts x people
         arrays this replaced grew by about 0.6 GB per 1,000 posts at 100,000 people; the pair table grows with
         what happened. Run it on an older checkout (PYTHONPATH=that/checkout) for the before figures.
lookup   a million look-ups among K stored (post, person) keys: the numpy hash table of lsbm_sim.engine.state against a
         binary search (np.searchsorted) in one sorted key array, the other structure considered.

    python benchmarks/bench_state.py                                   # 100k people, 1k/3k/10k posts; lookup at 10M/50M
    python benchmarks/bench_state.py --people 20000 --posts 100 300 --lookup-sizes 1000000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from common import fmt_seconds, in_child, median, peak_rss_gb, print_command, print_machine

HERE = Path(__file__).resolve()


def scenario(people: int, posts: int, steps: int) -> dict:
    topics = ["environment", "technology", "politics", "health", "sports", "entertainment", "business", "science"]
    return {
        "name": "state_memory",
        "seed": 1,
        "steps": steps,
        "population": {"size": people, "activity": {"distribution": "beta", "a": 2.0, "b": 5.0}},
        "network": {"kind": "barabasi_albert", "params": {"m": 5}},
        "content": [
            {"id": f"p{k}", "text": f"post {k} on {topics[k % 8]}", "topic": topics[k % 8],
             "author": {"strategy": "random"}, "step": k % max(steps // 2, 1)}
            for k in range(posts)
        ],  # fmt: skip
        "feed": {"policy": "chronological", "size": 10},
        # A fixed reaction law: the figures measure the engine's state, not the behavior model.
        "behavior": {"backend": "constant", "probabilities": {"like": 0.08, "share": 0.05, "comment": 0.01}},
    }


def worker(args: argparse.Namespace) -> dict:
    from lsbm_sim import Scenario, SocialModel

    started = time.perf_counter()
    model = SocialModel(Scenario.from_dict(scenario(args.people, args.n_posts, args.steps)))
    model.run()
    state = getattr(model, "state", None)
    return {
        "people": args.people,
        "posts": args.n_posts,
        "steps": args.steps,
        "seconds": time.perf_counter() - started,
        "exposures": int(model.events.rows),
        "pairs": len(state) if state is not None else None,
        "state_gb": state.nbytes / 2**30 if state is not None else None,
        "peak_rss_gb": peak_rss_gb(),
    }


def lookup(sizes: list[int], queries: int = 1_000_000, repeats: int = 3) -> None:
    from lsbm_sim.engine.state import PairState

    print()
    print("| stored pairs | hash table look-up s | sorted array searchsorted s | ratio | hash table bytes/pair |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    people = 1_000_000
    for k in sizes:
        item = rng.integers(0, 100_000, size=k)
        agent = rng.integers(0, people, size=k)
        state = PairState(people)
        for start in range(0, k, 5_000_000):  # in step-sized batches, as a run fills it
            state.add_sharers(item[start : start + 5_000_000], agent[start : start + 5_000_000])
        keys = np.unique(state.key(item, agent))
        # Half the questions are stored pairs, half are not (as for a step's feed entries and exposures).
        pick = rng.integers(0, len(keys), size=queries // 2)
        q_item = np.concatenate([keys[pick] // people, rng.integers(0, 100_000, size=queries - len(pick))])
        q_agent = np.concatenate([keys[pick] % people, rng.integers(0, people, size=queries - len(pick))])
        q_keys = state.key(q_item, q_agent)
        hashed, searched = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            state.sharers(q_item, q_agent)
            hashed.append(time.perf_counter() - t)
            t = time.perf_counter()
            at = np.minimum(np.searchsorted(keys, q_keys), len(keys) - 1)
            _ = keys[at] == q_keys
            searched.append(time.perf_counter() - t)
        h, s = median(hashed), median(searched)
        print(f"| {len(keys):,} | {fmt_seconds(h)} | {fmt_seconds(s)} | {s / h:.1f}x | {state.nbytes / len(keys):.0f} |",
              flush=True)  # fmt: skip
        del state, keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--posts", type=int, nargs="+", default=[1_000, 3_000, 10_000])
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--lookup-sizes", type=int, nargs="*", default=[10_000_000, 50_000_000])
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n-posts", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    print_machine()
    print_command()
    print(f"# {args.people:,} people, BA m=5, chronological feed of 10, constant reactions, {args.steps} steps")
    print()
    print("| posts | peak GB | state table GB | pairs kept | exposures | run s |")
    print("|---|---|---|---|---|---|")
    for posts in args.posts:
        got = in_child(HERE, ["--worker", "--people", str(args.people), "--n-posts", str(posts), "--steps",
                              str(args.steps)], args.timeout)  # fmt: skip
        if got is None:
            print(f"| {posts:,} | stopped after {args.timeout:.0f} s |", flush=True)
            continue
        table = "-" if got["state_gb"] is None else f"{got['state_gb']:.3f}"
        pairs = "-" if got["pairs"] is None else f"{got['pairs']:,}"
        print(f"| {posts:,} | {got['peak_rss_gb']:.2f} | {table} | {pairs} | {got['exposures']:,} "
              f"| {fmt_seconds(got['seconds'])} |", flush=True)  # fmt: skip
    if args.lookup_sizes:
        lookup(args.lookup_sizes)


if __name__ == "__main__":
    main()
