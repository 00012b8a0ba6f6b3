"""Tables from the files people export: CSV, TSV, Parquet and JSONL, with errors that name the file and row.

Both the simulator (posting pools, variant files) and the fine-tuning pipeline (`lsbm_sim.bft`) read their inputs
through these, so a file that one accepts the other accepts too.

>>> describe_rows([4])
'row 4 (data rows counted from 1)'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lsbm_sim.errors import DataError

TABLE_SUFFIXES = {".csv": "CSV", ".tsv": "TSV", ".parquet": "Parquet", ".pq": "Parquet", ".jsonl": "JSONL",
                  ".ndjson": "JSONL"}  # fmt: skip
ROWS_SHOWN = 5
"""How many offending row numbers an error message lists before saying how many more there are."""


def describe_rows(rows: Sequence[int] | np.ndarray) -> str:
    """'rows 3, 8, 12' or 'row 3', listing the first few and counting the rest (rows are 1-based).

    >>> describe_rows([3, 8, 12, 15, 20, 31, 40])
    'rows 3, 8, 12, 15, 20 and 2 more (data rows counted from 1)'
    """
    rows = [int(r) for r in rows]
    shown = ", ".join(str(r) for r in rows[:ROWS_SHOWN])
    more = f" and {len(rows) - ROWS_SHOWN} more" if len(rows) > ROWS_SHOWN else ""
    return f"{'row' if len(rows) == 1 else 'rows'} {shown}{more} (data rows counted from 1)"


def load_table(path: Path | str) -> pd.DataFrame:
    """Read a CSV, TSV, Parquet or JSONL file (chosen by its suffix) into a DataFrame.

    Raises DataError when the file is missing, has an unknown suffix or cannot be parsed.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unknown data file type {path.suffix!r}; use one of {', '.join(TABLE_SUFFIXES)}")
    try:
        if kind == "CSV":
            return pd.read_csv(path)
        if kind == "TSV":
            return pd.read_csv(path, sep="\t")
        if kind == "Parquet":
            return pd.read_parquet(path)
        return pd.read_json(path, lines=True)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        # pandas' own message says where parsing failed (line, byte); keep it on the one line we print.
        detail = " ".join(str(exc).split())
        raise DataError(f"{path}: cannot read it as {kind} ({detail})") from None


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file; a bad line is a DataError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    records = []
    with path.open(encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: line {line_number} is not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}: line {line_number} is not a JSON object")
            records.append(record)
    return records
