"""Killed runs: SIGKILL the whole Snakemake process group during training, in the middle of
inference and during the mosaic, then run the same command again; and one province's map rerun
alone. Every case starts from a copy of a shared upstream run (labels and training blocks of the
small demo world) or of the shared uninterrupted reference run, and ends equal to the reference."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from helpers import ROOT, demo_overrides

from l2h.core import runlock

pytestmark = pytest.mark.workflow
TARGET = "results/maps/national.tif"
REGIONS = ("cote_verte", "northmoor", "riverside")
MAPS = [f"results/maps/{name}.tif" for name in (*REGIONS, "national")]
# Snakemake 9 marks a started job's outputs in .snakemake/incomplete/<urlsafe base64 of the path>
# and removes the marker when the job has finished; rerun-incomplete (profiles/default) redoes
# every marked job.
INCOMPLETE = ".snakemake/incomplete"
# sitecustomize for a killed run: the first process of the run that renames a file whose path ends with
# `final` (before or after the rename, by `when`) tells the test through a FIFO and stops there until the
# test kills the run. The held state is the test's to choose: no race between the run and the kill.
HOLD = """\
import os
import threading

_replace = os.replace


def _replace_and_hold(src, dst, *args, **kwargs):
    held = os.fspath(dst).endswith({final!r})
    if held and {when!r} == "before":
        _hold()
    _replace(src, dst, *args, **kwargs)
    if held:
        _hold()


def _hold():
    fd = os.open({fifo!r}, os.O_WRONLY)
    os.write(fd, b"%d\\n" % os.getpid())
    os.close(fd)
    threading.Event().wait()  # until the test's SIGKILL


os.replace = _replace_and_hold
"""


def command(workdir: Path, config: Path, *args: str) -> list[str]:
    """`snakemake --profile profiles/default` on `workdir` (2 cores: the threads of the reference run)."""
    return [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--profile",
            str(ROOT / "profiles" / "default"), "--cores", "2", "-d", str(workdir), *args,
            "--configfile", str(config)]  # last: --configfile and --forcerun take several values


def run(workdir: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(command(workdir, config, *args), capture_output=True, text=True, timeout=1500)
    result.output = result.stdout + result.stderr
    return result


def run_ok(workdir: Path, config: Path, *args: str) -> str:
    result = run(workdir, config, *args)
    assert result.returncode == 0, result.output[-4000:]
    return result.output


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table Snakemake prints before running: rule -> jobs."""
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def kill_when_held(workdir: Path, config: Path, tmp_path: Path, final: str, when: str, what: str,
                   timeout: float = 400) -> None:
    """Run the target in its own process group with the HOLD hook, wait for a process to hold at the
    rename of `final` (`when`: "before" or "after" it), check the run's lock is live, then SIGKILL the
    whole group and wait until every one of its processes is gone."""
    hook = tmp_path / "hook"
    hook.mkdir()
    fifo = tmp_path / "held.fifo"
    os.mkfifo(fifo)
    (hook / "sitecustomize.py").write_text(HOLD.format(final=final, when=when, fifo=str(fifo)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))}
    log = open(workdir.parent / f"{workdir.name}.killed.log", "w")
    reader = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # read-write: the FIFO never reads as closed
    proc = subprocess.Popen(command(workdir, config, TARGET), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env=env)
    deadline = time.monotonic() + timeout  # a safety stop for a hung run, not a condition of the test
    try:
        while not select.select([reader], [], [], 1.0)[0]:
            if proc.poll() is not None:
                pytest.fail(f"the run ended (rc {proc.returncode}) before {what}:\n"
                            + Path(log.name).read_text()[-3000:])
            assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        # a live run: `make demo` must leave its lock alone
        assert runlock.main([str(workdir)]) == 2 and proc.pid in runlock.snakemake_processes(workdir)
    finally:
        group = _process_group(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        _wait_gone(group)
        log.close()
        os.close(reader)
    assert not _processes_in(workdir), "a job of the killed run is still running"


def _process_group(pgid: int) -> list[int]:
    """pidfds of the live processes of process group `pgid` (to wait on their end)."""
    fds = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                fds.append(os.pidfd_open(int(entry.name)))
    return fds


def _wait_gone(pidfds: list[int], timeout: float = 60) -> None:
    """Wait until every process behind `pidfds` has ended (a pidfd reads ready then)."""
    try:
        pending = list(pidfds)
        while pending:
            ready = select.select(pending, [], [], timeout)[0]
            assert ready, "a job of the killed run is still running"
            pending = [fd for fd in pending if fd not in ready]
    finally:
        for fd in pidfds:
            os.close(fd)


def _processes_in(workdir: Path) -> list[int]:
    """Live (not zombie) processes working in `workdir`."""
    target = os.path.realpath(workdir)
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if (entry.name.isdigit() and os.readlink(entry / "cwd") == target
                    and (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def unlock_like_make_demo(workdir: Path, config: Path) -> None:
    """The Makefile's path: a stale lock (no snakemake runs there) -> `snakemake --unlock`."""
    assert runlock.stale_lock(workdir)
    assert subprocess.run([sys.executable, "-m", "l2h.core.runlock", str(workdir)]).returncode == 0
    run_ok(workdir, config, "--unlock")
    assert runlock.main([str(workdir)]) == 1  # no lock left


def complete(workdir: Path, path: str) -> bool:
    """Whether Snakemake counts `path` as a finished output: present and not marked incomplete."""
    marker = workdir / INCOMPLETE / base64.urlsafe_b64encode(path.encode()).decode()
    return (workdir / path).exists() and not marker.exists()


def block_outputs(workdir: Path) -> dict[str, list[str]]:
    """Block id -> its outputs (classes, confidence and, with evaluation.pixels.network, the network
    alone's classes), from the reference run's predictions."""
    blocks: dict[str, list[str]] = {}
    for tif in sorted((workdir / "resources/pred").glob("*/*.tif")):
        if not tif.stem.endswith(("_confidence", "_network")):
            rel = tif.relative_to(workdir).as_posix()
            network = rel.replace(".tif", "_network.tif")
            blocks[tif.stem] = [rel, rel.replace(".tif", "_confidence.tif")] + (
                [network] if (workdir / network).exists() else [])
    return blocks


def identity(path: Path) -> tuple[int, str]:
    """A file's (inode, sha256 of its content). l2h writes every file under a temporary name and renames
    it into place, so a rewritten file is a new inode even when its content and time stamp are the same."""
    return path.stat().st_ino, hashlib.sha256(path.read_bytes()).hexdigest()


def identities(workdir: Path, *folders: str) -> dict[str, tuple[int, str]]:
    """`identity` of every file under `folders`."""
    return {p.relative_to(workdir).as_posix(): identity(p)
            for folder in folders for p in (workdir / folder).rglob("*") if p.is_file()}


def copy_run(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, symlinks=True)  # copy2: mtimes kept, so nothing looks outdated
    return dest


def assert_maps_equal(workdir: Path, reference: Path) -> None:
    for rel in MAPS:
        with rasterio.open(workdir / rel) as got, rasterio.open(reference / rel) as want:
            assert got.transform == want.transform and got.crs == want.crs, rel
            np.testing.assert_array_equal(got.read(), want.read(), err_msg=rel)


# Temporary names a killed job may leave: l2h.core.io.atomic_path's `.<stem>.<random>.tmp.<suffix>`,
# the mosaic's `.<stem>.merge.tif`, and the COG's hidden scratch folder `.<stem>.cog.<random>/`
# (rio-cogeo's intermediate file and the COG before its rename); and an inference chunk's
# progress file `.chunk_<n>.progress.json` (whole, written atomically: what the rerun keeps).
TEMPORARY = re.compile(r"\..+\.(tmp\.(tif|png|json)|merge\.tif)(\.aux\.xml)?|\.chunk_\d+\.progress\.json")


def assert_nothing_half_written(workdir: Path) -> None:
    """Every file in the output folders is whole under a final name -- rasters read in full, maps
    are valid COGs -- or has a temporary name."""
    from rio_cogeo.cogeo import cog_validate

    for folder in ("resources/pred", "results/maps"):
        for path in (workdir / folder).rglob("*"):
            if not path.is_file():
                continue
            if TEMPORARY.fullmatch(path.name) or path.parent.name.startswith("."):
                continue
            assert not path.name.startswith("."), path
            if path.suffix == ".tif":
                with rasterio.open(path) as src:
                    assert src.read().shape[0] == src.count, path
                if folder == "results/maps":
                    assert cog_validate(str(path), strict=True, quiet=True)[0], path


@pytest.fixture(scope="module")
def config(small_demo_world, tmp_path_factory) -> Path:
    """The small demo world (6 blocks) with tiny training: 6 steps and 2 of self-training, a checkpoint every 3."""
    settings = demo_overrides(small_demo_world)
    settings["sampling"] = {"target_fraction": 0.5, "tolerance": 0.1}  # 1 of 2 blocks per region
    path = tmp_path_factory.mktemp("resume_config") / "small.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


@pytest.fixture(scope="module")
def upstream(config, tmp_path_factory) -> Path:
    """A run up to the training inputs (labels, block statistics, training blocks)."""
    workdir = tmp_path_factory.mktemp("upstream") / "run"
    run_ok(workdir, config, "resources/training_blocks.csv")
    return workdir


@pytest.fixture(scope="module")
def reference(upstream, config, tmp_path_factory) -> Path:
    """The uninterrupted run to the national map."""
    workdir = copy_run(upstream, tmp_path_factory.mktemp("reference") / "run")
    run_ok(workdir, config, TARGET)
    return workdir


def test_kill_during_training_resumes_from_the_checkpoint(upstream, reference, config, tmp_path):
    import torch

    work = copy_run(upstream, tmp_path / "run")
    checkpoint = work / "results/model/training/checkpoint.pt"
    # held right after the first checkpoint (every 3 steps) is in place
    kill_when_held(work, config, tmp_path, "results/model/training/checkpoint.pt", "after", "a training checkpoint")
    assert not (work / "results/model/l2hnet.pt").exists()
    step = torch.load(checkpoint, weights_only=False)["step"]
    assert step == 3

    locked = run(work, config, TARGET)  # Snakemake 9 keeps its lock after a SIGKILL
    assert locked.returncode != 0 and "Directory cannot be locked" in locked.output
    run_ok(work, config, "--unlock")  # docs/operations.md: `snakemake --unlock`, then the same command again
    output = run_ok(work, config, TARGET)

    assert job_counts(output)["train"] == 1
    assert f"resuming from results/model/training/checkpoint.pt at step {step} of 8" in (
        work / "logs/train.log").read_text()
    got = torch.load(work / "results/model/l2hnet.pt", weights_only=False)["state_dict"]
    want = torch.load(reference / "results/model/l2hnet.pt", weights_only=False)["state_dict"]
    assert got.keys() == want.keys()
    assert max(float((got[k].float() - want[k].float()).abs().max()) for k in got) <= 1e-6
    assert_maps_equal(work, reference)
    assert_nothing_half_written(work)


def recorded_blocks(workdir: Path) -> set[str]:
    """The blocks the chunks' progress files record as finished (a block is finished once recorded)."""
    done = set()
    for path in (workdir / "resources/pred").glob("*/.chunk_*.progress.json"):
        with contextlib.suppress(OSError, ValueError):  # written atomically; absent until the first record
            done |= set(json.loads(path.read_text())["blocks"])
    return done


def test_kill_during_inference_keeps_recorded_blocks(reference, config, tmp_path):
    """A block counts as finished once its chunk's progress file records it (after its files are whole):
    a killed job's recorded blocks are kept by the rerun, unchanged; a block whose files were whole but
    not yet recorded is predicted again. The killed run holds right after its first record (no race)."""
    work = copy_run(reference, tmp_path / "run")
    for folder in ("resources/pred", "results/maps"):  # Snakemake remakes missing files a target needs
        shutil.rmtree(work / folder)
    blocks = block_outputs(reference)
    chunks = sorted(p.relative_to(reference).as_posix() for p in (reference / "resources/pred").glob("*/chunk_*.json"))
    # infer.blocks_per_job 4: each province's 2 blocks in one job; each block with its network-alone layer
    assert len(blocks) == 6 and len(chunks) == 3 and all(len(outs) == 3 for outs in blocks.values())

    kill_when_held(work, config, tmp_path, ".progress.json", "after", "a recorded block")
    done = recorded_blocks(work)
    assert len(done) >= 1 and not any(complete(work, c) for c in chunks)  # a job holds at its first record
    assert all((work / p).exists() for b in done for p in blocks[b])  # recorded only once whole
    before = {p: identity(work / p) for b in done for p in blocks[b]}
    assert_nothing_half_written(work)

    unlock_like_make_demo(work, config)
    output = run_ok(work, config, TARGET)

    # every chunk ran again and kept, untouched, exactly the blocks the killed run had recorded
    assert job_counts(output)["infer"] == len(chunks)
    assert {p: identity(work / p) for p in before} == before
    logs = "".join(p.read_text() for p in (work / "logs/infer").rglob("*.log"))
    kept = [int(n) for n in re.findall(r"(\d+) of \d+ block\(s\) kept from the interrupted attempt", logs)]
    assert sum(kept) == len(done), logs[-3000:]
    assert all(complete(work, c) for c in chunks)
    assert not list((work / "resources/pred").rglob(".*progress*"))  # dropped once a chunk is done
    assert_maps_equal(work, reference)
    assert_nothing_half_written(work)


def test_kill_during_mosaic_leaves_no_half_map(reference, config, tmp_path):
    work = copy_run(reference, tmp_path / "run")
    for name in ("northmoor.tif", "northmoor.png", "national.tif", "national.png"):
        (work / "results/maps" / name).unlink()
    maps = work / "results/maps"
    # held with the region's finished COG under its temporary name, before its rename into place
    kill_when_held(work, config, tmp_path, "results/maps/northmoor.tif", "before", "the northmoor mosaic's rename")
    assert any(p.name.startswith(".northmoor.") for p in maps.iterdir())
    assert not complete(work, "results/maps/northmoor.tif")
    assert_nothing_half_written(work)

    unlock_like_make_demo(work, config)
    output = run_ok(work, config, TARGET)

    assert job_counts(output) == {"mosaic_region": 1, "mosaic_national": 1}
    assert_maps_equal(work, reference)
    assert_nothing_half_written(work)


def test_one_province_rerun_touches_only_its_files(reference, config, tmp_path):
    work = copy_run(reference, tmp_path / "run")
    own_map = {f"results/maps/northmoor.{ext}" for ext in ("tif", "png", "tif.aux.xml", "qml")}

    def rerun_changes(*args: str) -> tuple[dict, set]:
        before = identities(work, "resources/pred", "results/maps")
        output = run_ok(work, config, "results/maps/northmoor.tif", *args)
        after = identities(work, "resources/pred", "results/maps")
        assert after.keys() == before.keys()
        return job_counts(output), {p for p in before if after[p] != before[p]}

    # docs/operations.md: snakemake results/maps/northmoor.tif --forcerun mosaic_region
    assert rerun_changes("--forcerun", "mosaic_region") == ({"mosaic_region": 1}, own_map)
    # docs/operations.md: snakemake results/maps/northmoor.tif --forcerun resources/pred/northmoor/chunk_*.json
    own = work / "resources/pred/northmoor"
    own_chunks = sorted(str(p.relative_to(work)) for p in own.glob("chunk_*.json"))
    own_blocks = {str(p.relative_to(work)) for p in own.glob("*.tif")}
    # 2 blocks (classes, confidence, the network alone's classes), one job
    assert len(own_chunks) == 1 and len(own_blocks) == 6
    counts, changed = rerun_changes("--forcerun", *own_chunks)
    assert counts == {"infer": 1, "mosaic_region": 1}
    assert changed == set(own_chunks) | own_blocks | own_map
    assert_maps_equal(work, reference)
