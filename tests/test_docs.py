"""The documentation stays short at the front, current, and without dead links."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 260


LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|<img[^>]*\ssrc=\"([^\"]+)\"")


def _load_generator():
    from tools import config_reference

    return config_reference


def _doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _relative_links(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # links inside code blocks are examples
    links = []
    for markdown_target, img_target in LINK.findall(text):
        target = markdown_target or img_target
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # http(s), mailto
        links.append(target)
    return links


def _github_anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped,
    spaces to hyphens, repeats numbered."""
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        candidate, number = slug, 0
        while candidate in anchors:
            number += 1
            candidate = f"{slug}-{number}"
        anchors.add(candidate)
    return anchors


def test_config_reference_page_is_current():
    generator = _load_generator()
    page = ROOT / "docs" / "config-reference.md"
    assert page.is_file(), "docs/config-reference.md is missing: run `python -m tools.config_reference`"
    assert page.read_text(encoding="utf-8") == generator.render(), (
        "docs/config-reference.md is stale (the config's help texts changed): "
        "run `python -m tools.config_reference` and commit the page"
    )


def test_config_reference_lists_every_config_key():
    from paco_core.config import describe_fields
    from paco_core.rl.config import TrainConfig

    text = _load_generator().render()
    for name, *_ in describe_fields(TrainConfig):
        assert f"| `{name}` |" in text, f"{name} is missing from the config reference"


def test_readme_stays_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines < README_MAX_LINES, (
        f"README.md has {lines} lines; keep it under {README_MAX_LINES} and move detail to docs/"
    )


def test_readme_test_command_is_the_one_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = "python -m pytest -q"
    assert f"\n{command}\n" in ci, ".ci/run no longer runs `python -m pytest -q`: update the README too"
    assert f"\n{command}\n" in readme, (
        f"README.md must show CI's test command `{command}` on a line of its own"
    )


def test_relative_links_in_readme_and_docs_point_to_files_and_headings():
    missing = []
    for path in _doc_files():
        for target in _relative_links(path):
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            if not resolved.exists():
                missing.append(f"{path.relative_to(ROOT)} -> {target}")
            elif anchor and resolved.suffix == ".md" and anchor not in _github_anchors(resolved):
                missing.append(f"{path.relative_to(ROOT)} -> {target} (no such heading)")
    assert not missing, "links to files or headings that do not exist: " + "; ".join(missing)


def test_every_test_file_is_in_the_development_pages_test_table():
    page = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    missing = [
        path.name for path in sorted((ROOT / "tests").glob("test_*.py")) if f"`{path.name}`" not in page
    ]
    assert not missing, f"add these to docs/development.md's test layout table: {missing}"


def test_readme_holds_no_volatile_figures():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert not re.search(r"\b\d[\d,]* tests\b", readme), "test counts belong in docs/development.md"
