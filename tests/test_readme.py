"""The README is a newcomer's map: short, its links lead somewhere, its example config is a valid search."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from search.experiment.search_config import SearchConfig

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_the_readme_opens_with_the_two_commands_and_stays_short():
    lines = README.splitlines()
    assert lines[3].startswith("make run ") and lines[4].startswith("make test ")
    assert "make test" in (ROOT / ".ci" / "run").read_text()  # CI runs the README's test command
    assert len(lines) <= 150


def test_every_link_of_the_readme_and_the_docs_leads_to_a_file():
    missing = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):  # a page, with or without #part
            if not (page.parent / target).exists():
                missing.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not missing, missing


def test_the_readmes_example_config_is_a_valid_search(tmp_path):
    example = re.search(r"```yaml\n(.*?)```", README, re.S).group(1)
    path = tmp_path / "search.yaml"
    path.write_text(example)
    cfg = SearchConfig.load(str(path), [])
    assert cfg.search.num_trials == 6 and "model.performer_kernel_ratio" in yaml.safe_load(example)["space"]
