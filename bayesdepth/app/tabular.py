"""Reading a user's CSV file into tensors, with errors that name the row and the column."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from bayesdepth._validation import check_dtype

__all__ = ["TableData", "read_csv", "read_features"]


@dataclass(frozen=True)
class TableData:
    """Features ``x`` (n, d), target ``y`` (n,), and the column names of ``x``."""

    x: torch.Tensor
    y: torch.Tensor
    feature_names: tuple[str, ...]
    target: str


def _read_table(
    path: Path, required: tuple[str, ...] = (), dtype: torch.dtype = torch.float64
) -> tuple[list[str], torch.Tensor]:
    """The header and every data row as numbers of ``dtype`` (errors name the row and column).

    ``required`` columns are checked as soon as the header is read; a UTF-8 byte-order mark is
    dropped; a value that does not fit ``dtype`` (e.g. 1e308 in float32) is an error.
    """
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not a UTF-8 text file (byte {exc.start}: {exc.reason}); save it as UTF-8 CSV"
        ) from None
    except csv.Error as exc:
        raise ValueError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise ValueError(f"{path}: the file is empty (a header row is required)")
    header = [name.strip() for name in rows[0]]
    missing = [name for name in required if name not in header]
    if missing:
        raise ValueError(
            f"{path}: column(s) {', '.join(map(repr, missing))} not found; columns are "
            f"{', '.join(header)}"
        )
    body = [(i, row) for i, row in enumerate(rows[1:], start=2) if any(c.strip() for c in row)]
    if not body:
        raise ValueError(f"{path}: no data rows after the header")
    values, lines = [], []
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
        lines.append(line)
    table = torch.tensor(values, dtype=torch.float64).to(dtype)
    bad = ~torch.isfinite(table)
    if bool(bad.any()):
        row, col = (int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"{path}: value {values[row][col]!r} in row {lines[row]}, column {header[col]!r} "
            f"does not fit in {dtype} (largest {torch.finfo(dtype).max:.3g})"
        )
    return header, table


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
    header, table = _read_table(path, required=(target,), dtype=dtype)
    if len(header) < 2:
        raise ValueError(f"{path}: need at least one feature column besides {target!r}")
    j = header.index(target)
    features = [k for k in range(len(header)) if k != j]
    return TableData(
        x=table[:, features],
        y=table[:, j],
        feature_names=tuple(header[k] for k in features),
        target=target,
    )


def read_features(
    path: str | Path, feature_names: tuple[str, ...], target: str | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The columns ``feature_names`` of a CSV file (float64, in that order), and the ``target``
    column if the file has one (else None); other columns are ignored.

    Raises:
        ValueError: a feature column is missing, or a cell is malformed (as :func:`read_csv`).
    """
    path = Path(path)
    header, table = _read_table(path, required=tuple(feature_names))
    x = table[:, [header.index(name) for name in feature_names]]
    y = table[:, header.index(target)] if target is not None and target in header else None
    return x, y
