"""One onnxruntime build per environment: the `cpu` and `gpu` extras each bring exactly one distribution
of the `onnxruntime` module (two would overwrite each other's files), nothing else l2h installs pulls
another, and `make install` switching builds removes the other first."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import tomllib

import pytest
from helpers import ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# the distributions that install the `onnxruntime` module
ONNXRUNTIME_BUILDS = {"onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino",
                      "onnxruntime-qnn", "onnxruntime-training"}
MAKE_EXTRAS = ("dev", "report", "slurm", "view")  # what `make install` adds to the onnxruntime extra


def _wanted(requirements: list[str], extras: set[str]) -> set[str]:
    names = set()
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is None or any(requirement.marker.evaluate({"extra": e}) for e in extras or {""}):
            names.add(canonicalize_name(requirement.name))
    return names


def _closure(extras: set[str]) -> set[str]:
    """The distributions `pip install -e .[extras]` asks for: l2h's requirements, then (for those installed
    here) theirs, transitively."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    direct = list(project["dependencies"]) + [r for e in extras for r in project["optional-dependencies"][e]]
    seen, todo = set(), [canonicalize_name(Requirement(r).name) for r in direct]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            todo.extend(_wanted(importlib.metadata.requires(name) or [], set()))
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here (the GPU build's own requirements: flatbuffers, numpy, nvidia-*)
    return seen


@pytest.mark.parametrize("build,expected", [("cpu", "onnxruntime"), ("gpu", "onnxruntime-gpu")])
def test_each_install_brings_one_onnxruntime_build(build, expected):
    assert _closure({*MAKE_EXTRAS, build}) & ONNXRUNTIME_BUILDS == {expected}


def test_the_core_dependencies_bring_no_onnxruntime_build():
    assert not _closure(set()) & ONNXRUNTIME_BUILDS


def _fake_venv(tmp_path, installed: str):
    """A venv whose python logs its arguments, with the onnxruntime distribution ``installed``, and an npm
    that does nothing: `make install` runs its real recipe against it."""
    log = tmp_path / "calls.log"
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(f'#!/bin/sh\necho "$*" >> {log}\n'
                                    f'case "$*" in "-m pip show --quiet "*) [ "$*" = "-m pip show --quiet {installed}" ] ;; '
                                    f'*) exit 0 ;; esac\n')
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "npm").write_text("#!/bin/sh\nexit 0\n")
    for script in (bin_dir / "python", tools / "npm"):
        script.chmod(0o755)
    return tmp_path / "venv", log, {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"}


def _install(venv, env, *args):
    done = subprocess.run(["make", "-s", "-C", str(ROOT), "install", f"VENV={venv}", *args], capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr


def test_switching_to_the_gpu_build_uninstalls_the_cpu_one_first(tmp_path):
    venv, log, env = _fake_venv(tmp_path, installed="onnxruntime")
    _install(venv, env, "ONNXRUNTIME=gpu")
    calls = log.read_text().splitlines()
    uninstall = calls.index("-m pip uninstall --quiet -y onnxruntime onnxruntime-gpu")
    install = next(i for i, c in enumerate(calls) if c.startswith("-m pip install --quiet -e"))
    assert uninstall < install and calls[install].endswith(".[dev,docs,report,slurm,view,gpu]")
    assert (venv / ".l2h-installed-gpu").exists()


def test_the_cpu_build_kept_when_it_is_the_one_asked_for(tmp_path):
    venv, log, env = _fake_venv(tmp_path, installed="onnxruntime")
    _install(venv, env)
    calls = log.read_text().splitlines()
    assert not any("uninstall" in c for c in calls)
    assert any(c.endswith(".[dev,docs,report,slurm,view,cpu]") for c in calls)


def test_a_gpu_venv_stays_gpu_when_no_build_is_named(tmp_path):
    """After make install ONNXRUNTIME=gpu, a plain make install (as make test runs it) keeps the GPU build."""
    venv, log, env = _fake_venv(tmp_path, installed="onnxruntime-gpu")
    (venv / ".l2h-installed-gpu").touch()
    os.utime(venv / ".l2h-installed-gpu", (0, 0))  # older than pyproject.toml: the recipe runs again
    _install(venv, env)
    calls = log.read_text().splitlines()
    assert not any("uninstall" in c for c in calls)
    assert any(c.endswith(".[dev,docs,report,slurm,view,gpu]") for c in calls)


def test_an_unknown_build_is_refused_in_one_line():
    done = subprocess.run(["make", "-s", "-C", str(ROOT), "-n", "install", "ONNXRUNTIME=tpu"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "ONNXRUNTIME must be cpu or gpu, not 'tpu'" in done.stderr
