"""Every Python example of the README and of the documentation site runs as written.

Each ```python block of README.md, docs/**/*.md and the files those pages include (``--8<--``
snippets) is one test: executed in a fresh namespace, as ``__main__``, in an empty working
directory that sees the repository's ``results/`` (the published runs some examples read).
A block preceded by a ``<!-- slow -->`` line runs a whole suite: it is marked slow and runs
under ``pytest -m slow``. A block preceded by ``<!-- script: NAME -->`` is a script that a page
tells the reader to save as NAME and run with arguments: here it is only compiled, and the test
of its page runs it as a separate process (`script_of`). Shell and TOML blocks are not run; a
fence in any other language is an error, so no Python example escapes under another name.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SLOW = "<!-- slow -->"
SCRIPT = re.compile(r"^<!-- script: (\S+) -->$")
NOT_RUN = {"bash", "console", "toml", "text", ""}  # shown, not executed
FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)\s*$")
SNIPPET = re.compile(r'^--8<--\s+"([^"]+)"\s*$')


def _pages() -> list[Path]:
    """README.md, every page under docs/, and the files the pages include as snippets."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    included = []
    for page in pages:
        for line in page.read_text().splitlines():
            match = SNIPPET.match(line.strip())
            if match:
                included.append(ROOT / match.group(1))
    return [page for page in [*pages, *included] if page.exists()]


def script_of(page: Path, name: str) -> str:
    """The code of the block of ``page`` marked ``<!-- script: name -->``."""
    lines = page.read_text().splitlines()
    for language, line, code, _ in _blocks(page):
        before = [text.strip() for text in lines[: line - 1] if text.strip()]
        if language == "python" and before and before[-1] == f"<!-- script: {name} -->":
            return code
    raise LookupError(f"{page} has no block marked <!-- script: {name} -->")


def _blocks(page: Path) -> list[tuple[str, int, str, bool]]:
    """(language, first line, code, slow) of every fenced block of ``page``."""
    lines = page.read_text().splitlines()
    blocks, index = [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, language = opening.group(1), opening.group(2)
        previous = [line.strip() for line in lines[:index] if line.strip()]
        slow = bool(previous) and previous[-1] == SLOW
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"{page}:{index + 1}: a ``` fence is never closed")
        code = "\n".join(line.removeprefix(indent) for line in lines[index + 1 : end])
        blocks.append((language, index + 1, code, slow))
        index = end + 1
    return blocks


def _examples() -> list:
    params = []
    for page in _pages():
        for language, line, code, slow in _blocks(page):
            if language == "python":
                name = f"{page.relative_to(ROOT)}:{line}"
                marks = [pytest.mark.slow] if slow else []
                params.append(pytest.param(name, code, marks=marks, id=name))
    return params


def _is_script(page: Path, line: int) -> bool:
    before = [text.strip() for text in page.read_text().splitlines()[: line - 1] if text.strip()]
    return bool(before) and SCRIPT.match(before[-1]) is not None


EXAMPLES = _examples()


def test_every_fence_is_python_or_not_run():
    """A block in another language (``py``, ``pycon``) would silently escape the examples."""
    unknown = [
        f"{page.relative_to(ROOT)}:{line} ({language!r})"
        for page in _pages()
        for language, line, _, _ in _blocks(page)
        if language != "python" and language not in NOT_RUN
    ]
    assert not unknown, f"fenced blocks in unexpected languages: {unknown}"


def test_the_readme_and_the_guides_have_examples():
    names = [param.id for param in EXAMPLES]
    assert any(name.startswith("README.md:") for name in names)
    assert any(name.startswith("docs/") for name in names)


@pytest.mark.parametrize(("name", "code"), EXAMPLES)
def test_example_runs_as_written(name, code, tmp_path, monkeypatch):
    page, line = name.rsplit(":", 1)
    if _is_script(ROOT / page, int(line)):  # run with its arguments by its page's test
        compile(code, name, "exec")
        return
    if (ROOT / "results").exists():
        (tmp_path / "results").symlink_to(ROOT / "results", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    print(f"running the example at {name}")
    exec(compile(code, name, "exec"), {"__name__": "__main__"})
    print(f"ran the example at {name}")
