"""envs/*.yaml (conda environments for cluster users): each rule's environment provides every module its
`l2h` subcommand imports (read from the code, :mod:`imports`), and they list the same packages as
pyproject.toml."""

import re
import tomllib
from pathlib import Path

import yaml
from helpers import ROOT
from imports import package_imports, subcommand_imports, workflow_rules

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


def _env_packages(path: Path, pypi_names: bool = True) -> set[str]:
    """The packages an environment file lists (conda and pip), by their PyPI names or as written."""
    env = yaml.safe_load(path.read_text())
    names = set()
    for dep in env["dependencies"]:
        for spec in (dep["pip"] if isinstance(dep, dict) else [dep]):
            name = _name(spec)
            names.add(name if pypi_names else re.split(r"[\s<>=!\[;]", spec.strip(), maxsplit=1)[0].lower())
    return names - NOT_PACKAGES


MODULE_PACKAGES = yaml.safe_load((Path(__file__).parent / "module_packages.yaml").read_text())


def test_every_rule_runs_l2h_in_a_conda_environment():
    rules, odd = workflow_rules(ROOT)
    assert not odd, f"rules without a conda environment or an `l2h --log {{log}} <subcommand>` command: {odd}"
    assert {r.name for r in rules} >= {"infer", "train", "export", "harmonize", "mosaic_region", "sample"}


def test_each_rule_environment_provides_what_its_subcommand_imports():
    """The fault this guards against: envs/ort-gpu.yaml lacked onnx, which `l2h infer` imports (the
    block graph), so every inference job failed at import under --sdm conda."""
    missing = []
    for rule in workflow_rules(ROOT)[0]:
        listed = _env_packages(ROOT / rule.env, pypi_names=False)
        for module, files in sorted(subcommand_imports(rule.subcommand).items()):
            if not listed & set(MODULE_PACKAGES[module]):
                missing.append(f"rule {rule.name} ({rule.env}) runs `l2h {rule.subcommand}`, which imports {module} "
                               f"({', '.join(sorted(files))}); the environment lists none of "
                               f"{MODULE_PACKAGES[module]}")
    assert not missing, "\n".join(missing)


def test_every_module_l2h_imports_has_its_packages_listed():
    unknown = {m: sorted(f) for m, f in package_imports().items() if m not in MODULE_PACKAGES}
    assert not unknown, f"add these modules to tests/workflow/module_packages.yaml: {unknown}"


def test_the_import_reading_follows_lazy_imports_and_skips_other_handlers():
    """`l2h infer` imports onnxruntime only inside its handler's modules, and matplotlib (the mosaic's
    quicklook, a lazy import of another handler in the same module) not at all."""
    infer = subcommand_imports("infer")
    assert "l2h/maps/infer.py" in infer["onnxruntime"] and "onnx" in infer
    assert "matplotlib" not in infer and "torch" not in infer
    assert "matplotlib" in subcommand_imports("mosaic")


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
