"""The Makefile's targets, `make help` and the README agree: every target listed once, none missing; and the
README stays a short entry point that links every page under docs/."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = (ROOT / "Makefile").read_text()
README = (ROOT / "README.md").read_text()
README_MAX_LINES = 250


def defined_targets() -> set[str]:
    """Rules named by a plain word (file targets such as $(STAMP) are not commands)."""
    return set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE, re.MULTILINE))


def phony_targets() -> list[str]:
    return re.search(r"^\.PHONY:(.*)$", MAKEFILE, re.MULTILINE).group(1).split()


def help_targets() -> list[str]:
    """The targets `make help` prints, in its order."""
    help_rule = MAKEFILE.split("\nhelp:\n", 1)[1].split("\n\n", 1)[0]
    return re.findall(r'^\t@echo "make ([a-z-]+) ', help_rule, re.MULTILINE)


def test_make_help_lists_every_target_once_and_nothing_else():
    listed = help_targets()

    assert len(listed) == len(set(listed)), listed
    assert set(listed) == defined_targets()
    assert sorted(phony_targets()) == sorted(defined_targets())


def test_the_readme_names_every_target():
    assert sorted(t for t in defined_targets() if f"make {t}" not in README) == []


def test_make_test_runs_in_parallel_and_make_soak_selects_the_soak_tests():
    assert re.search(r"^test: .*\n\t.*pytest \$\(XDIST\)", MAKEFILE, re.MULTILINE)
    assert re.search(r"^soak: .*\n\t.*-m tests\.careless_host .*\n\tSOAK=1 .*-m soak", MAKEFILE, re.MULTILINE)
    assert re.search(r"^test-fast: .*\n\t.*pytest .*tests/unit", MAKEFILE, re.MULTILINE)


def test_the_readmes_target_table_lists_every_target_once_in_the_order_of_make_help():
    rows = re.findall(r"^\| `make ([a-z-]+)` \|", README, re.MULTILINE)

    assert rows == help_targets()


def test_the_readme_stays_short():
    assert len(README.splitlines()) <= README_MAX_LINES


def test_the_readme_links_every_page_under_docs():
    pages = sorted(path.name for path in (ROOT / "docs").glob("*.md"))

    assert pages, "docs/ has no pages"
    assert [page for page in pages if f"](docs/{page}" not in README] == []
