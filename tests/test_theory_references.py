"""Every ``docs/theory.md §N`` reference names a section of docs/theory.md; no outside sheet.

Scans the ``.py`` and ``.md`` files of the library, the inference package, examples, benchmarks,
docs and tests, and README.md. A reference is ``docs/theory.md`` followed by one or more section
numbers (``§3``, ``§1.6``, lists ``§2.2 and §4``, ranges ``§1-§3``); each must have a heading
``## N. Title`` or ``### N.M Title`` in docs/theory.md. The word THEORY (the name of a sheet kept
outside the repository) must not appear at all.
"""

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
THEORY = ROOT / "docs" / "theory.md"
FOLDERS = ("bayesdepth", "inference", "examples", "benchmarks", "docs", "tests")
REFERENCE = re.compile(
    r"docs/theory\.md\s*((?:§\d+(?:\.\d+)?)(?:\s*(?:,|-|–|and|or)\s*§\d+(?:\.\d+)?)*)"
)
SECTION = re.compile(r"§(\d+(?:\.\d+)?)")
RANGE = re.compile(r"§(\d+)\s*[-–]\s*§(\d+)\b(?!\.)")
HEADING = re.compile(r"^(?:## (\d+)\. |### (\d+\.\d+) )\S", re.MULTILINE)


def _files():
    files = [ROOT / "README.md"]
    for folder in FOLDERS:
        files += sorted((ROOT / folder).rglob("*.py")) + sorted((ROOT / folder).rglob("*.md"))
    this = Path(__file__).resolve()
    return [f for f in files if f.is_file() and f.resolve() != this and ".venv" not in f.parts]


def _sections():
    return {a or b for a, b in HEADING.findall(THEORY.read_text(encoding="utf-8"))}


def _cited(text):
    """(line number, section) for every section a reference in ``text`` names."""
    out = []
    for match in REFERENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        group = match.group(1)
        numbers = SECTION.findall(group)
        for lo, hi in RANGE.findall(group):  # §1-§3 names §2 too
            numbers += [str(k) for k in range(int(lo) + 1, int(hi))]
        out += [(line, n) for n in numbers]
    return out


def test_theory_page_has_numbered_sections_in_order():
    sections = _sections()
    top = sorted(int(s) for s in sections if "." not in s)
    assert top == list(range(len(top))) and len(top) >= 12, top
    for s in sections:
        if "." in s:
            assert s.split(".")[0] in sections, f"subsection {s} has no section"


def test_parser_finds_lists_and_ranges():
    text = "see docs/theory.md §1-§3 and docs/theory.md §2.2 and §4, also docs/theory.md §9.9"
    assert [n for _, n in _cited(text)] == ["1", "3", "2", "2.2", "4", "9.9"]


def test_every_reference_names_an_existing_section():
    sections = _sections()
    missing, count = [], 0
    for path in _files():
        for line, number in _cited(path.read_text(encoding="utf-8")):
            count += 1
            if number not in sections:
                missing.append(f"{path.relative_to(ROOT)}:{line}: §{number}")
    assert count > 50, f"only {count} references found: is the pattern still right?"
    assert not missing, "references to sections docs/theory.md does not have:\n" + "\n".join(
        missing
    )


def test_no_reference_to_a_sheet_outside_the_repository():
    hits = []
    for path in _files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\bTHEORY\b", line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not hits, "\n".join(hits)
