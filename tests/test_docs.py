"""Every ```python block in README.md and docs/*.md runs on its own (a fresh namespace and a fresh
temporary working directory per block), so a reader can copy any one block and run it."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


BLOCKS = [(page, i, code) for page in PAGES for i, code in enumerate(BLOCK.findall(page.read_text()))]


@pytest.mark.parametrize("page,i,code", BLOCKS, ids=[f"{p.name}[{i}]" for p, i, _ in BLOCKS])
def test_example_runs_on_its_own(page, i, code, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{page.stem}_{i}"}
    exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)


def test_docs_have_examples():
    assert sum(len(BLOCK.findall(p.read_text())) for p in PAGES) >= 5
