"""The README opens with the two commands, and CI runs the second one verbatim."""

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]


def readme_commands():
    return re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)[:2]


def test_readme_starts_with_the_two_commands():
    demo, tests = readme_commands()
    assert demo.endswith("bayesdepth demo")
    assert "pip install -q torch==2.13.0" in demo and "pip install -q torch==2.13.0" in tests
    assert tests.endswith("python -m pytest -q")


def test_ci_runs_the_readme_test_command():
    script = (ROOT / ".ci" / "run").read_text()
    assert readme_commands()[1] in script.splitlines()
