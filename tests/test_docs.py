"""The documentation holds: every Python snippet runs as pasted, the README's commands are the
ones docs/ measured, and nothing points at files outside the repository.

Conventions these tests enforce:
- A ```python block is a script a reader can paste into a fresh interpreter: it makes its own
  imports and data, and runs in seconds (results are given in comments, never as ``>>>``
  sessions). A block that cannot run here (it needs another package and a download) is
  preceded by ``<!-- not run by tests/test_docs.py: <why> -->`` and is skipped with that reason.
- Shell commands go in ```bash or plain ``` blocks.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN = re.compile(r"<!--\s*not run by tests/test_docs\.py:\s*(.+?)\s*-->\s*$")


def fenced_blocks(path: Path) -> list[tuple[str, int, str, str]]:
    """``(language, first line, code, line before the fence)`` of each fenced block."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].startswith("```"):
            lang, start, body = lines[i][3:].strip(), i + 1, []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            before = lines[start - 2] if start >= 2 else ""
            blocks.append((lang, start + 1, "\n".join(body) + "\n", before))
        i += 1
    return blocks


def python_blocks(path: Path) -> list[tuple[int, str, str | None]]:
    """``(line, code, skip_reason)`` of each ```python block of a Markdown file."""
    out = []
    for lang, line, code, before in fenced_blocks(path):
        if lang == "python":
            m = NOT_RUN.match(before.strip())
            out.append((line, code, m.group(1) if m else None))
    return out


SNIPPETS = [(page, line, code, skip) for page in PAGES for line, code, skip in python_blocks(page)]


def test_snippets_are_found():
    assert len(SNIPPETS) >= 15
    assert {p.name for p, *_ in SNIPPETS} >= {"README.md", "training.md", "convolution.md"}


@pytest.mark.parametrize("page, line, code, skip", SNIPPETS,
                         ids=[f"{p.relative_to(ROOT)}:{n}" for p, n, _, _ in SNIPPETS])
def test_snippet_runs_when_pasted(page, line, code, skip, tmp_path):
    if skip:
        pytest.skip(skip)
    # a fresh interpreter in an empty folder, off the repository (so `import convnet` is the
    # installed package) and with one BLAS thread (the suite runs on shared cores)
    env = {**os.environ, "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, (
        f"{page.relative_to(ROOT)}:{line}: the snippet fails when pasted:\n{r.stderr[-3000:]}")


def test_python_blocks_have_no_prompts():
    """Snippets are scripts to paste, so ``>>>`` prompts would be syntax errors."""
    bad = [f"{p.relative_to(ROOT)}:{n}" for p, n, code, _ in SNIPPETS
           if re.search(r"^\s*(>>>|\.\.\.)\s", code, re.M)]
    assert not bad


def test_at_most_a_few_snippets_are_not_run():
    skipped = [f"{p.relative_to(ROOT)}:{n}" for p, n, _, skip in SNIPPETS if skip]
    assert len(skipped) <= 1, skipped


def shell_commands(path: Path, prog: str = "convnet") -> list[str]:
    """Commands starting with ``prog`` in the shell (```bash or plain ```) blocks of a page,
    with ``\\`` continuations joined, comments removed and whitespace collapsed."""
    out = []
    for lang, _, code, _ in fenced_blocks(path):
        if lang not in ("", "bash", "sh", "console"):
            continue
        for line in code.replace("\\\n", " ").splitlines():
            line = " ".join(line.split("#", 1)[0].split())
            if line.startswith(prog + " "):
                out.append(line)
    return out


def test_readme_train_commands_are_the_measured_ones():
    """Each `convnet train` of the README is a command that docs/ gives with its result."""
    readme = shell_commands(ROOT / "README.md")
    docs = {c for page in (ROOT / "docs").glob("*.md") for c in shell_commands(page)}
    trains = [c for c in readme if c.startswith("convnet train")]
    assert len(trains) >= 3 and "convnet train --model unet" in " ".join(trains)
    missing = [c for c in trains if c not in docs]
    assert not missing, f"README commands not found verbatim in docs/: {missing}"


def test_readme_commands_carry_their_time():
    """Every `convnet` command line of the README says how long it takes (`~13 min`, `< 1 s`)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"^## The command line\n```\n(.*?)^```", text, re.S | re.M).group(1)
    commands = re.split(r"\n(?=convnet )", block.strip())
    assert len(commands) >= 8
    timed = re.compile(r"#.*\d+(\.\d+)?\s*(s|min|h)\b")
    untimed = [c.splitlines()[0] for c in commands if not timed.search(c)]
    assert not untimed, untimed


# References that only made sense next to the files this project was written from: notes,
# seeds and specs that are not in the repository. State the fact, or link to docs/.
OUTSIDE = re.compile(r"PERF-NOTES|\.\./shared|shared/|SPEC\.md|\bseeds?\s*\d{3}\b|\bnotes?\s*\d{3}\b"
                     r"|lecture[- ]notes?\b|\bthe notes\b|notes'", re.I)


def referencing_files():
    yield from (ROOT / "convnet").rglob("*.py")
    yield from (ROOT / "docs").glob("*.md")
    yield from (ROOT / "convnet").rglob("*.md")
    yield from (ROOT / "benchmarks").glob("*.py")
    yield from (ROOT / "benchmarks").glob("*.md")
    yield ROOT / "README.md"
    yield ROOT / "BENCHMARKS.md"


def test_no_references_to_files_outside_the_repository():
    hits = []
    for path in referencing_files():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not hits, "\n".join(hits)
