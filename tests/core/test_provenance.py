"""Code versions follow the imports: editing any module a subcommand runs, even through other
modules, changes the code version of the rules that call it; other edits do not."""

import shutil
from pathlib import Path

import pytest

import l2h
from l2h.core.provenance import code_version

PACKAGE = Path(l2h.__file__).parent


@pytest.fixture
def package_copy(tmp_path):
    copy = tmp_path / "l2h"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _append(path: Path) -> None:
    path.write_text(path.read_text() + "\n# an edit\n")


def test_an_edit_to_a_module_imported_only_transitively_changes_the_version(package_copy):
    before = code_version("sample", package_copy)
    assert before == code_version("sample")  # the same sources give the same version
    # `l2h sample` imports sample_map, which imports inputs.regions, which imports core.grid
    source = (package_copy / "sampling" / "commands.py").read_text()
    handler = source[source.index("def _sample("):source.index("\ndef ", source.index("def _sample(") + 1)]
    assert "grid" not in handler and "from l2h.sampling.sample_map import" in handler
    _append(package_copy / "core" / "grid.py")
    assert code_version("sample", package_copy) != before


def test_an_edit_elsewhere_leaves_the_version(package_copy):
    before = {name: code_version(name, package_copy) for name in ("sample", "region-geometry", "roads")}
    _append(package_copy / "model" / "loss.py")  # training only
    _append(package_copy / "demo" / "noise.py")  # the demo world only
    assert {name: code_version(name, package_copy) for name in before} == before
    _append(package_copy / "model" / "train.py")
    assert code_version("train", package_copy) != code_version("train")


def test_the_closure_holds_what_the_hand_lists_missed():
    """The hand-written lists omitted modules the rules ran: sample's block statistics, the
    windows mosaic takes from the shared core."""
    from l2h.core.provenance import handler_sources

    names = {c: {p.relative_to(PACKAGE).as_posix() for p in handler_sources(c, PACKAGE)}
             for c in ("sample", "download", "mosaic")}
    assert "sampling/block_stats.py" in names["sample"] and "inputs/fetch_product.py" in names["download"]
    assert "core/windows.py" in names["mosaic"] and "model/train.py" not in names["mosaic"]
    assert "sampling/commands.py" in names["sample"] and "maps/commands.py" not in names["sample"]


def test_an_unknown_subcommand_is_named():
    with pytest.raises(ValueError, match="no l2h subcommand 'nope'"):
        code_version("nope")
