"""Reading a user's CSV file into tensors, with errors that name the row and the column."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ._validation import check_dtype

__all__ = ["TableData", "read_csv"]


@dataclass(frozen=True)
class TableData:
    """Features ``x`` (n, d), target ``y`` (n,), and the column names of ``x``."""

    x: torch.Tensor
    y: torch.Tensor
    feature_names: tuple[str, ...]
    target: str


def read_csv(path: str | Path, target: str, dtype: torch.dtype = torch.float32) -> TableData:
    """Read a CSV file with a header row; ``target`` names the label column.

    Every other column is a numeric feature. The file is only read, never modified.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is empty or has no data rows, ``target`` is not a column, a row has
            the wrong number of cells, or a cell is missing or not a finite number (the message
            names the row number as counted in the file, header = row 1, and the column).
    """
    check_dtype("dtype", dtype)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist")
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise ValueError(f"{path}: the file is empty (a header row is required)")
    header = [name.strip() for name in rows[0]]
    if target not in header:
        raise ValueError(
            f"{path}: target column {target!r} not found; columns are {', '.join(header)}"
        )
    body = [(i, row) for i, row in enumerate(rows[1:], start=2) if any(c.strip() for c in row)]
    if not body:
        raise ValueError(f"{path}: no data rows after the header")
    if len(header) < 2:
        raise ValueError(f"{path}: need at least one feature column besides {target!r}")
    values = []
    for line, row in body:
        if len(row) != len(header):
            raise ValueError(
                f"{path}: row {line} has {len(row)} cells, the header has {len(header)}"
            )
        parsed = []
        for name, cell in zip(header, row):
            text = cell.strip()
            if not text:
                raise ValueError(f"{path}: missing value in row {line}, column {name!r}")
            try:
                number = float(text)
            except ValueError:
                raise ValueError(
                    f"{path}: non-numeric value {text!r} in row {line}, column {name!r}"
                ) from None
            if not math.isfinite(number):
                raise ValueError(
                    f"{path}: non-finite value {text!r} in row {line}, column {name!r}"
                )
            parsed.append(number)
        values.append(parsed)
    table = torch.tensor(values, dtype=torch.float64)
    j = header.index(target)
    features = [k for k in range(len(header)) if k != j]
    return TableData(
        x=table[:, features].to(dtype),
        y=table[:, j].to(dtype),
        feature_names=tuple(header[k] for k in features),
        target=target,
    )
