"""Real per-impression data in, and simulated rates per exposure held against it.

Every reader returns one per-post table: `post_id, impressions, likes, shares, comments` (counts as floats; a
count the source does not give is NaN, with a note), plus what the source adds (`is_reply` for Twitter, `paid`
for Facebook). `table.attrs` says where it came from (`source`, `platform`), which posts were kept and why
(`kept`), and what was cleaned (`notes`: rows read, rows dropped for zero or negative impressions, ...).

- `read_twitter_analytics`: Twitter (X) Analytics per-tweet exports (`tweet_activity_metrics_*.csv`), a file or
  a folder of monthly files. Retweets are shares, replies are comments. Replies (text starting with "@") are
  kept in the column `is_reply` and, by default, left out: their audience is the thread, not the followers.
- `read_facebook_insights`: Facebook Page Insights post exports, with the original header names ("Lifetime
  Post Total Impressions", "like", "share", "comment", "Paid") or those of the UCI "Facebook metrics" copy
  (`T_Impression`, ';'-separated). Paid posts are kept in the column `paid` and, by default, left out.
- `read_generic`: a CSV `post_id, impressions, likes, shares, comments` (singular names such as a run's `like`,
  `share`, `comment` are read too).
- `load_impressions`: any of these, a file or a folder, told apart by its header.

Quirks handled: thousands separators ("1,234"), localised Twitter headers (see `TWITTER_HEADERS`: English,
German, Spanish, French), empty counts (the row is dropped and counted), a column that is absent (NaN and a
note; impressions absent is an error). A value that is not a number is an error naming file and line.

`compare_rates` puts a simulated run's per-post rates (its items table: `impressions`, `like`, `share`,
`comment`) beside a real table: pooled rates per impression, the per-post rate distributions (KS), the share
of posts with none of each reaction, likes per share and comments per share.

>>> real = load_impressions("../shared/data/impressions/debruine_twitter/raw")  # doctest: +SKIP
>>> compare_rates(run_items, real).table  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lsbm_sim.analysis.compare import ks
from lsbm_sim.errors import DataError, LsbmError

COUNTS = ("impressions", "likes", "shares", "comments")
COLUMNS = ("post_id", *COUNTS)
REACTIONS = {"shares": "share", "likes": "like", "comments": "comment"}
"""Each count of a real table and the simulated reaction it is held against."""

TWITTER_HEADERS: dict[str, tuple[str, ...]] = {
    "post_id": ("tweet id", "tweet-id", "id del tweet", "identifiant du tweet"),
    "text": ("tweet text", "tweet-text", "texto del tweet", "texte du tweet"),
    "impressions": ("impressions", "impressionen", "impresiones"),
    "shares": ("retweets",),
    "likes": ("likes", "gefällt mir", "gefällt mir-angaben", "me gusta", "j'aime"),
    "comments": ("replies", "antworten", "respuestas", "réponses"),
}
"""The header names a Twitter Analytics export is read by (compared lower-case): the English export and the
German, Spanish and French ones. Another language: rename its columns to the English names."""

FACEBOOK_HEADERS: dict[str, tuple[str, ...]] = {
    "impressions": ("lifetime post total impressions", "t_impression"),
    "reach": ("lifetime post total reach", "t_reach"),
    "likes": ("like",),
    "shares": ("share",),
    "comments": ("comment",),
    "paid": ("paid",),
}
"""Facebook Page Insights post columns: the export's own names and the UCI "Facebook metrics" copy's."""

GENERIC_HEADERS: dict[str, tuple[str, ...]] = {
    "post_id": ("post_id", "item_id", "id"),
    "impressions": ("impressions",),
    "likes": ("likes", "like"),
    "shares": ("shares", "share"),
    "comments": ("comments", "comment"),
}

_THOUSANDS = re.compile(r"^[+-]?\d{1,3}([,\u202f\u00a0 ]\d{3})+(\.\d*)?$")


# ------------------------------------------------------------------------------------------------ loaders


def load_impressions(path: Path | str, **options: Any) -> pd.DataFrame:
    """Per-post impressions from any source this module reads, a file or a folder of files of one kind,
    told apart by their header. `options` go to the reader (`replies=True`, `paid=True`).

    Examples:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "posts.csv").write_text("post_id,impressions,likes,shares\\na,1000,12,3\\nb,500,4,0\\n")
        >>> table = load_impressions(folder / "posts.csv")
        >>> table[["post_id", "impressions", "shares"]].values.tolist()
        [['a', 1000.0, 3.0], ['b', 500.0, 0.0]]
        >>> table.attrs["notes"]["missing_columns"]
        ['comments']
    """
    path = Path(path)
    files = _files(path)
    kinds = {f: _kind(f) for f in files}
    if len(set(kinds.values())) > 1:
        listed = ", ".join(f"{f.name} ({k})" for f, k in kinds.items())
        raise DataError(f"{path}: the files are of different kinds ({listed}); give one kind at a time")
    kind = next(iter(kinds.values()))
    reader = {"twitter": read_twitter_analytics, "facebook": read_facebook_insights, "generic": read_generic}[kind]
    return reader(path, **options)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.glob("*.csv") if p.is_file())
        if not files:
            raise DataError(f"{path}: a folder with no .csv files")
        return files
    if not path.is_file():
        raise DataError(f"{path}: no such file or folder")
    return [path]


def _kind(path: Path) -> str:
    header = {h.lower() for h in _header(path)[0]}
    if header & set(TWITTER_HEADERS["post_id"]) or (header & set(TWITTER_HEADERS["shares"]) and
                                                   header & set(TWITTER_HEADERS["impressions"])):  # fmt: skip
        return "twitter"
    if header & set(FACEBOOK_HEADERS["impressions"]):
        return "facebook"
    if "impressions" in header or "post_id" in header:
        return "generic"
    raise DataError(f"{path}:1: not an impressions file (header {sorted(header)}); expected a Twitter Analytics "
                    "export, a Facebook Insights export or post_id,impressions,likes,shares,comments")  # fmt: skip


def _header(path: Path) -> tuple[list[str], str]:
    """The header's names (stripped, a byte-order mark removed) and the separator: ',', ';' or a tab."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            first = f.readline()
    except (UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{path}:1: unreadable ({exc})") from None
    if not first.strip():
        raise DataError(f"{path}:1: empty file")
    sep = max((",", ";", "\t"), key=first.count)
    return [name.strip() for name in next(csv.reader([first], delimiter=sep))], sep


def _read(path: Path) -> pd.DataFrame:
    """Every column as text, with the parser's line number in any error."""
    _, sep = _header(path)
    try:
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: {exc}") from None  # pandas names the line ("Expected 7 fields in line 12")
    except (pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    frame["_line"] = np.arange(len(frame)) + 2  # header = line 1
    return frame


def _find(frame: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    lower = {c.lower(): c for c in frame.columns}
    return next((lower[n] for n in names if n in lower), None)


def _count(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """A count column as floats: thousands separators removed, an empty cell NaN; anything else that is not
    a number is an error naming file and line."""
    text = frame[column].str.strip()
    separated = text.str.match(_THOUSANDS)
    text = text.where(~separated, text.str.replace(r"[,\u202f\u00a0 ]", "", regex=True))
    values = pd.to_numeric(text.replace("", np.nan), errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy() & (text != "").to_numpy())
    if len(bad):
        row = int(bad[0])
        raise DataError(f"{path}:{frame['_line'].iloc[row]}: {column} {frame[column].iloc[row]!r} is not a number")
    return values.to_numpy(dtype=float)


def _table(frame: pd.DataFrame, path: Path, headers: dict[str, tuple[str, ...]], notes: dict[str, Any]) -> pd.DataFrame:
    """The per-post counts of one file: impressions required, other counts NaN (and noted) when absent."""
    column = _find(frame, headers["impressions"])
    if column is None:
        raise DataError(f"{path}:1: no impressions column (looked for {', '.join(headers['impressions'])})")
    table = pd.DataFrame({"impressions": _count(frame, column, path)}, index=frame.index)
    for count in ("likes", "shares", "comments"):
        column = _find(frame, headers[count])
        if column is None:
            table[count] = np.nan
            if count not in notes.setdefault("missing_columns", []):
                notes["missing_columns"].append(count)
        else:
            table[count] = _count(frame, column, path)
    return table


def _finish(table: pd.DataFrame, path: Path, platform: str, kept: str, notes: dict[str, Any]) -> pd.DataFrame:
    """Rows with an empty count, or with zero or negative impressions, dropped and counted."""
    counts = [c for c in COUNTS if c not in notes.get("missing_columns", [])]
    empty = table[counts].isna().any(axis=1).to_numpy()
    notes["rows_with_an_empty_count_dropped"] = int(empty.sum())
    table = table[~empty]
    no_impressions = (table["impressions"] <= 0).to_numpy()
    notes["rows_without_impressions_dropped"] = int(no_impressions.sum())
    table = table[~no_impressions].reset_index(drop=True)
    notes["posts"] = len(table)
    if not len(table):
        raise DataError(f"{path}: no post with impressions left ({json.dumps(notes)})")
    table.attrs.update({"source": str(path), "platform": platform, "kept": kept, "notes": notes})
    return table


def read_twitter_analytics(path: Path | str, replies: bool = False) -> pd.DataFrame:
    """Twitter Analytics per-tweet exports: one file, or a folder of them (every .csv in it; a tweet listed
    in two files is read once). Retweets count as shares, replies as comments. A tweet whose text starts with
    "@" is a reply (`is_reply`); replies are left out unless `replies=True`, and `attrs["kept"]` says which.

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "tweet_activity_metrics_x_en.csv"
    >>> _ = f.write_text('"Tweet id","Tweet text","impressions","retweets","replies","likes"\\n'
    ...                  '"1","Hello","1,200.0","2.0","1.0","9.0"\\n"2","@bob yes","80.0","0.0","0.0","1.0"\\n')
    >>> t = read_twitter_analytics(f)
    >>> t[["post_id", "impressions", "shares", "is_reply"]].values.tolist(), t.attrs["notes"]["replies_left_out"]
    ([['1', 1200.0, 2.0, False]], 1)
    """
    path = Path(path)
    notes: dict[str, Any] = {"files": 0, "rows": 0}
    parts = []
    for file in _files(path):
        frame = _read(file)
        id_column = _find(frame, TWITTER_HEADERS["post_id"])
        table = _table(frame, file, TWITTER_HEADERS, notes)
        table.insert(0, "post_id", frame[id_column].str.strip() if id_column else [f"{file.name}:{n}" for n in frame["_line"]])
        text_column = _find(frame, TWITTER_HEADERS["text"])
        table["is_reply"] = frame[text_column].str.lstrip().str.startswith("@") if text_column else False
        if not text_column:
            notes["no_text_column"] = "replies cannot be told from original tweets: all kept"
        notes["files"] += 1
        notes["rows"] += len(frame)
        parts.append(table)
    table = pd.concat(parts, ignore_index=True)
    duplicate = table["post_id"].duplicated().to_numpy()
    notes["duplicate_tweets_dropped"] = int(duplicate.sum())
    table = table[~duplicate]
    notes["replies"] = int(table["is_reply"].sum())
    if replies:
        kept = "all tweets: original tweets and replies (is_reply)"
    else:
        kept = "original tweets only: replies (text starting with '@') left out; replies=True keeps them"
        notes["replies_left_out"] = notes["replies"]
        table = table[~table["is_reply"]]
    return _finish(table, path, "twitter", kept, notes)


def read_facebook_insights(path: Path | str, paid: bool = False) -> pd.DataFrame:
    """Facebook Page Insights post exports (lifetime figures, one row per post): the original header names
    or the UCI "Facebook metrics" copy's, ',' or ';'-separated. Posts have no id in these files: `post_id` is
    `file:line`. Paid-promoted posts (`paid`) are left out unless `paid=True`: their impressions were bought.
    `reach` (distinct people) is kept beside impressions where the file has it."""
    path = Path(path)
    notes: dict[str, Any] = {"files": 0, "rows": 0}
    parts = []
    for file in _files(path):
        frame = _read(file)
        table = _table(frame, file, FACEBOOK_HEADERS, notes)
        table.insert(0, "post_id", [f"{file.name}:{n}" for n in frame["_line"]])
        reach = _find(frame, FACEBOOK_HEADERS["reach"])
        if reach:
            table["reach"] = _count(frame, reach, file)
        paid_column = _find(frame, FACEBOOK_HEADERS["paid"])
        table["paid"] = _count(frame, paid_column, file) if paid_column else np.nan
        notes["files"] += 1
        notes["rows"] += len(frame)
        parts.append(table)
    table = pd.concat(parts, ignore_index=True)
    if paid:
        kept = "all posts: unpaid and paid-promoted (paid)"
    else:
        unknown = table["paid"].isna().to_numpy()
        notes["rows_without_paid_flag_dropped"] = int(unknown.sum())
        notes["paid_left_out"] = int((table["paid"] > 0).sum())
        table = table[~unknown & (table["paid"] == 0)]
        kept = "unpaid posts only: paid-promoted ones left out; paid=True keeps them"
    return _finish(table, path, "facebook", kept, notes)


def read_generic(path: Path | str) -> pd.DataFrame:
    """A CSV `post_id, impressions, likes, shares, comments` (or `like`, `share`, `comment`; `item_id` for
    the id), ',' or ';'-separated; a folder reads every .csv in it. Only impressions is required."""
    path = Path(path)
    notes: dict[str, Any] = {"files": 0, "rows": 0}
    parts = []
    for file in _files(path):
        frame = _read(file)
        table = _table(frame, file, GENERIC_HEADERS, notes)
        id_column = _find(frame, GENERIC_HEADERS["post_id"])
        table.insert(0, "post_id", frame[id_column].str.strip() if id_column else [f"{file.name}:{n}" for n in frame["_line"]])
        notes["files"] += 1
        notes["rows"] += len(frame)
        parts.append(table)
    return _finish(pd.concat(parts, ignore_index=True), path, "generic", "all rows", notes)


def from_items(items: pd.DataFrame, source: str = "a simulated run") -> pd.DataFrame:
    """A run's items table (`item_id`, `impressions`, `like`, `share`, `comment`) as an impressions table;
    posts never shown (no impressions) are left out and counted. A table already in this module's layout
    is returned as it is."""
    if "likes" in items.columns or "shares" in items.columns:
        return items
    if "impressions" not in items.columns:
        raise LsbmError(f"{source}: no impressions column (a run written by an older version?)")
    table = pd.DataFrame({
        "post_id": items["item_id"].astype(str) if "item_id" in items.columns else np.arange(len(items)).astype(str),
        "impressions": items["impressions"].to_numpy(dtype=float),
        **{count: items[r].to_numpy(dtype=float) if r in items.columns else np.nan for count, r in REACTIONS.items()},
    })  # fmt: skip
    shown = (table["impressions"] > 0).to_numpy()
    missing = [count for count, r in REACTIONS.items() if r not in items.columns]
    notes = {"posts_never_shown_left_out": int((~shown).sum()), "posts": int(shown.sum()), "missing_columns": missing}
    table = table[shown].reset_index(drop=True)
    table.attrs.update({"source": items.attrs.get("source", source), "platform": "simulated",
                        "kept": "posts shown at least once", "notes": notes})  # fmt: skip
    return table


# ---------------------------------------------------------------------------------------------- comparing

PSEUDO_COUNT = 0.5
"""Added to a pooled count before the log-ratio, so that a side with none of a reaction is far off, not
infinitely far (a Jeffreys-style continuity correction)."""


@dataclass
class RatesComparison:
    """What `compare_rates` found: one row per figure with the simulated and real values and how far apart
    they are (`log_ratio` for pooled rates, `ks` and its real-vs-real `floor` for per-post distributions,
    `difference` for shares of posts)."""

    table: pd.DataFrame
    sim: pd.DataFrame
    real: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)

    def score(self) -> float:
        """One number to minimise: the mean |log(sim / real)| of the pooled rates per impression, plus the
        mean KS distance of the per-post rate distributions, over the reactions both sides have. The first
        term is scale (1 = a factor e apart), the second shape (0 = the same distribution, 1 = no overlap)."""
        rows = self.table.set_index("figure")
        pooled = [rows.loc[f"{c}_per_impression", "log_ratio"] for c in REACTIONS if f"{c}_per_impression" in rows.index]
        spread = [rows.loc[f"{c}_per_impression_per_post", "ks"] for c in REACTIONS
                  if f"{c}_per_impression_per_post" in rows.index]  # fmt: skip
        pooled = [abs(v) for v in pooled if not pd.isna(v)]
        spread = [v for v in spread if not pd.isna(v)]
        if not pooled:
            raise LsbmError("no rate per impression can be compared: the two sides share no reaction count")
        return float(np.mean(pooled) + (np.mean(spread) if spread else 0.0))

    def floor(self) -> float:
        """The score two halves of the real posts reach against each other (its KS part; the pooled part
        is near 0): the least a simulation can expect."""
        values = self.table["floor"].dropna()
        return float(values.mean()) if len(values) else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"rates": json.loads(self.table.to_json(orient="records")), "settings": self.settings}


def _log_ratio(sim_count: float, sim_impressions: float, real_count: float, real_impressions: float) -> float:
    return float(np.log(((sim_count + PSEUDO_COUNT) / sim_impressions) / ((real_count + PSEUDO_COUNT) / real_impressions)))


def compare_rates(sim_items: pd.DataFrame, real_impressions: pd.DataFrame, floor_splits: int = 20,
                  seed: int = 0) -> RatesComparison:  # fmt: skip
    """Rates per exposure of a simulated run against real per-post impressions. `sim_items`: a run's items
    table (`impressions`, `like`, `share`, `comment`) or a table in this module's layout; posts never shown
    are left out. Figures, for each reaction both sides count:

    - `<count>_per_impression`: pooled (sum of the count / sum of impressions), and `log_ratio` = log(sim /
      real) with `PSEUDO_COUNT` added to each count;
    - `<count>_per_impression_per_post`: the two-sample KS distance between the per-post rates, and the
      `floor`: the median distance between two random halves of the real posts (`floor_splits` halvings);
    - `posts_without_<count>`: the share of posts with none (`difference` = sim - real);
    - `likes_per_share`, `comments_per_share`: pooled ratios with their `log_ratio`.

    >>> sim = pd.DataFrame({"item_id": ["a", "b"], "impressions": [1000, 1000], "like": [10, 0], "share": [2, 0]})
    >>> real = pd.DataFrame({"post_id": ["x", "y"], "impressions": [500.0, 1500.0], "likes": [5.0, 15.0],
    ...                      "shares": [1.0, 3.0], "comments": [np.nan, np.nan]})
    >>> row = compare_rates(sim, real, floor_splits=0).table.set_index("figure").loc["likes_per_impression"]
    >>> float(row["sim"]), float(row["real"])
    (0.005, 0.01)
    """
    sim = from_items(sim_items)
    real = from_items(real_impressions, "the real impressions")
    for name, table in (("simulated", sim), ("real", real)):
        if not len(table):
            raise LsbmError(f"the {name} posts are empty (no post with impressions)")
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    have = [c for c in REACTIONS if sim[c].notna().all() and real[c].notna().all()]
    sim_impressions, real_impressions_total = float(sim["impressions"].sum()), float(real["impressions"].sum())
    for count in have:
        s_count, r_count = float(sim[count].sum()), float(real[count].sum())
        rows.append({"figure": f"{count}_per_impression", "sim": s_count / sim_impressions,
                     "real": r_count / real_impressions_total,
                     "log_ratio": _log_ratio(s_count, sim_impressions, r_count, real_impressions_total)})  # fmt: skip
    for count in have:
        s_rate = (sim[count] / sim["impressions"]).to_numpy(dtype=float)
        r_rate = (real[count] / real["impressions"]).to_numpy(dtype=float)
        row = {"figure": f"{count}_per_impression_per_post", "sim": float(np.median(s_rate)),
               "real": float(np.median(r_rate)), "ks": ks(s_rate, r_rate)}  # fmt: skip
        if floor_splits and len(r_rate) >= 4:
            halves = []
            for _ in range(floor_splits):
                perm = rng.permutation(len(r_rate))
                halves.append(ks(r_rate[perm[: len(perm) // 2]], r_rate[perm[len(perm) // 2:]]))
            row["floor"] = float(np.median(halves))
        rows.append(row)
    for count in have:
        s_none, r_none = float((sim[count] == 0).mean()), float((real[count] == 0).mean())
        rows.append({"figure": f"posts_without_{count}", "sim": s_none, "real": r_none, "difference": s_none - r_none})
    for count in ("likes", "comments"):
        if count in have and "shares" in have:
            s_c, s_s, r_c, r_s = (float(t[c].sum()) for t in (sim, real) for c in (count, "shares"))
            rows.append({"figure": f"{count}_per_share", "sim": s_c / s_s if s_s else np.nan,
                         "real": r_c / r_s if r_s else np.nan,
                         "log_ratio": float(np.log((s_c + PSEUDO_COUNT) / (s_s + PSEUDO_COUNT))
                                            - np.log((r_c + PSEUDO_COUNT) / (r_s + PSEUDO_COUNT)))})  # fmt: skip
    columns = ["figure", "sim", "real", "log_ratio", "ks", "floor", "difference"]
    table = pd.DataFrame(rows).reindex(columns=columns)
    table["n_sim"], table["n_real"] = len(sim), len(real)
    missing = sorted(set(REACTIONS) - set(have))
    settings = {
        "simulated": sim.attrs.get("source", "a table"), "real": real.attrs.get("source", "a table"),
        "real kept": real.attrs.get("kept", "all rows"), "real notes": real.attrs.get("notes", {}),
        "simulated notes": sim.attrs.get("notes", {}),
        "not compared": f"{', '.join(missing)}: absent on one side" if missing else "nothing",
        "score": "mean |log(sim/real)| of pooled rates per impression + mean per-post KS",
        "pseudo count": PSEUDO_COUNT, "floor splits": floor_splits, "seed": seed,
    }  # fmt: skip
    return RatesComparison(table=table, sim=sim, real=real, settings=settings)
