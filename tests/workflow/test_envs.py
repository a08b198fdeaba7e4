"""envs/*.yaml (conda environments for cluster users) list the same packages as pyproject.toml."""

import re
import tomllib
from pathlib import Path

import yaml
from helpers import ROOT

CONDA_TO_PYPI = {"pytorch": "torch", "matplotlib-base": "matplotlib"}
NOT_PACKAGES = {"python", "pip"}
# Snakemake orchestrates the jobs; it is not needed inside a job's environment.
ORCHESTRATOR = {"snakemake"}


def _name(spec: str) -> str:
    name = re.split(r"[\s<>=!\[;]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")
    return CONDA_TO_PYPI.get(name, name)


def _pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_name(d) for d in project["dependencies"]}
    extras = {_name(d) for deps in project["optional-dependencies"].values() for d in deps}
    return core, extras


def _env_packages(path: Path) -> set[str]:
    env = yaml.safe_load(path.read_text())
    names = set()
    for dep in env["dependencies"]:
        for spec in (dep["pip"] if isinstance(dep, dict) else [dep]):
            names.add(_name(spec))
    return names - NOT_PACKAGES


def test_env_files_exist_per_rule_group():
    assert {p.stem for p in (ROOT / "envs").glob("*.yaml")} == {"geo", "torch-gpu", "ort-gpu"}


def test_every_env_package_is_a_declared_dependency():
    core, extras = _pyproject()
    for path in (ROOT / "envs").glob("*.yaml"):
        unknown = _env_packages(path) - core - extras
        assert not unknown, f"{path.name} lists packages pyproject.toml does not declare: {unknown}"


def test_every_dependency_is_in_some_env():
    core, _ = _pyproject()
    union = set().union(*(_env_packages(p) for p in (ROOT / "envs").glob("*.yaml")))
    assert core - ORCHESTRATOR - union == set()


def test_gpu_envs_carry_the_gpu_runtimes():
    assert "torch" in _env_packages(ROOT / "envs" / "torch-gpu.yaml")
    assert "onnxruntime-gpu" in _env_packages(ROOT / "envs" / "ort-gpu.yaml")
