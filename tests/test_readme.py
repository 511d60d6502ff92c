"""Every code block of the README runs as written, in the shortened form its marker gives.

A block may be preceded by ``<!-- readme-test: ... -->`` holding ``;;``-separated directives:
``sub OLD => NEW`` (shorten: fewer steps, a quick study), ``allow-fail: TEXT`` (a bash line containing
TEXT may fail, as the README says it does where a dataset is not prepared, but with at most two lines of
error and no traceback) or ``skip: REASON`` (blocks that cannot run on one machine in CI).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # subprocesses and end-to-end runs: pytest -m integration

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"(?:^ *<!-- readme-test: (?P<marker>.*?) -->\n)?^(?P<indent> *)```(?P<lang>bash|python)\n(?P<code>.*?)^(?P=indent)```",
                   re.M | re.S)


def blocks() -> list[tuple[str, str, str, str]]:
    found = []
    for m in BLOCK.finditer(README.read_text()):
        line = README.read_text()[: m.start("code")].count("\n")
        code = "".join(l[len(m["indent"]):] for l in m["code"].splitlines(True))
        found.append((f"README.md:{line}", m["lang"], code, m["marker"] or ""))
    return found


def directives(marker: str) -> tuple[list[tuple[str, str]], list[str], str | None]:
    subs, allow, skip = [], [], None
    for part in filter(None, (p.strip() for p in marker.split(";;"))):
        if part.startswith("sub "):
            old, new = part[4:].split("=>")
            subs.append((old.strip(), new.strip()))
        elif part.startswith("allow-fail:"):
            allow.append(part.split(":", 1)[1].strip())
        elif part.startswith("skip:"):
            skip = part.split(":", 1)[1].strip()
        else:
            raise ValueError(f"unknown readme-test directive {part!r}")
    return subs, allow, skip


def test_the_readme_has_blocks_to_run():
    found = blocks()
    assert len(found) >= 10 and {lang for _, lang, _, _ in found} == {"bash", "python"}


@pytest.mark.parametrize("where,lang,code,marker", blocks(), ids=[b[0] for b in blocks()])
def test_readme_block_runs(where, lang, code, marker, tmp_path):
    subs, allow, skip = directives(marker)
    if skip:
        pytest.skip(skip)
    for old, new in subs:
        assert old in code, f"{where}: the marker's {old!r} is not in the block"
        code = code.replace(old, new)
    env = dict(os.environ, MPLBACKEND="Agg")
    if lang == "python":
        out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=900)
        assert out.returncode == 0, f"{where}:\n{code}\n{out.stderr[-3000:]}"
        return
    for line in code.splitlines():
        command = line.split("  #")[0].strip()
        if not command or command.startswith("#"):
            continue
        out = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        if any(text in command for text in allow):
            lines = [l for l in out.stderr.splitlines() if l.strip()]
            assert out.returncode == 0 or (len(lines) <= 2 and "Traceback" not in out.stderr), f"{command}\n{out.stderr[-3000:]}"
        else:
            assert out.returncode == 0, f"{where}: {command}\n{out.stderr[-3000:]}"
