"""The commands of README.md and the docs pages (docs/*.md) run as typed: every `make`, `snakemake` and
`l2h` command of their shell blocks and inline code, offline, in the project folder (Snakemake as a
dry run, make with -n), so the documentation and the code cannot drift apart. Commands that need a cluster, the network, your own files or a
server that keeps running are listed in SKIP with the reason."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

pytestmark = pytest.mark.workflow

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
COMMAND = re.compile(r"^(make|snakemake|l2h)\s")
# command (as written, comments and line continuations removed) or its start -> why it is not run here
SKIP = {
    "l2h view": "a server that keeps running (tests/view/test_viewer.py serves the demo's maps)",
    "snakemake --profile": "needs a SLURM cluster (tests/workflow/test_slurm.py runs the profile on one)",
    "snakemake --configfile my.yaml": "needs your own configuration",
    "snakemake --configfile examples/china.yaml": "needs the provinces file the example names (a national run)",
    "snakemake --report": "needs a finished run (tests/evaluation/test_report.py builds the report of one)",
    "snakemake --cores all results/maps/northmoor.tif --forcerun resources/pred/northmoor/chunk_*.json":
        "its glob names a finished run's chunk files (tests/workflow/test_resume.py runs it on one)",
    "snakemake --sdm conda": "needs conda and the network to build the environments",
    "l2h reference-points --raster": "rewrites the committed examples/chesapeake_wv/points.csv",
}
# commands run for real, not as a dry run: they are quick and change nothing a run made
RUN_AS_IS = ("snakemake --unlock",)


def readme_commands() -> list[str]:
    """The `make`, `snakemake` and `l2h` commands of README.md and docs/*.md: lines of their fenced blocks
    and inline code spans, comments and line continuations removed."""
    text = "\n".join(page.read_text(encoding="utf-8") for page in PAGES)
    commands = []
    for block in re.findall(r"```[^\n]*\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if COMMAND.match(line):
                commands.append(" ".join(line.split()))
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for span in re.findall(r"`([^`\n]+)`", prose):
        if COMMAND.match(span):
            commands.append(" ".join(span.split()))
    return sorted(set(commands))


def skip_reason(command: str) -> str | None:
    if "..." in command or "<" in command:
        return "a pattern with a placeholder, not a command"
    return next((why for start, why in SKIP.items() if command == start or command.startswith(start + " ")), None)


def as_run(command: str) -> str:
    """The command as the test runs it: make as a dry run, Snakemake as a dry run without a lock, and
    a subcommand named in the prose (`l2h infer`) as its --help."""
    words = shlex.split(command)
    if words[0] == "make":
        return "make -n " + " ".join(shlex.quote(w) for w in words[1:])
    if words[0] == "l2h" and len(words) == 2 and not words[1].startswith("-"):
        return f"{command} --help"
    if words[0] == "snakemake" and not command.startswith(RUN_AS_IS):
        return command + ("" if "-n" in words else " -n") + " --nolock"
    return command


COMMANDS = readme_commands()


def test_the_readme_has_commands_to_check():
    assert len(COMMANDS) >= 10 and "make demo" in COMMANDS and "make test" in COMMANDS
    assert any(c.startswith("snakemake --cores all --config train=") for c in COMMANDS)


@pytest.fixture(scope="module")
def demo_inputs():
    """The demo world in resources/demo, where `make demo` puts it (generated when absent)."""
    world = ROOT / "resources" / "demo"
    if not (world / "manifest.json").exists():
        done = subprocess.run([str(BIN / "l2h"), "demo-world", str(world), "--seed", "42"], cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    return world


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs_as_typed(command, demo_inputs):
    if (why := skip_reason(command)) is not None:
        pytest.skip(why)
    assert "../shared" not in command  # a fresh clone has nothing beside it
    env = {"PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home()), "LANG": "C.UTF-8"}
    done = subprocess.run(["bash", "-c", as_run(command)], cwd=ROOT, capture_output=True, text=True, timeout=1500,
                          env=env)
    assert done.returncode == 0, f"{as_run(command)}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
