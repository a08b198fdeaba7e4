"""The demo map keeps its 1 m detail: the workflow with the demo's defaults (a shorter training, one
flip) scores itself against the demo world's 1 m truth outside the training blocks, and its class
boundaries and sub-cell pixels stay above floors measured after the detail work (bench/cv.py; the
floors sit below the worst of three seeds), and above the 10 m consensus label's on the same pixels.
A change that makes the map blockier -- the 10 m prior's steps, every edge-cell pixel taught the
cell's class -- fails here. The 1 m truth never reaches training."""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import demo_overrides, shell_commands, snakemake

pytestmark = pytest.mark.workflow

# the demo's defaults but 150 + 50 training steps and no test-time flips (the test's cost)
SHORT = {"train": {"steps": 150, "self_training_steps": 50}, "infer": {"flips": 1, "threads": 2}}
# measured with SHORT on the demo world, seeds 0, 1, 2 (bench/results/detail_guard.json): boundary F1
# 0.684 / 0.634 / 0.689, sub-cell OA 0.558 / 0.562 / 0.578; the previous defaults' map (10 m prior
# steps, pixel-wise edge cells) scored 0.482 and 0.345. Floors a little below the worst seed: another
# CPU (AVX2 against AVX-512) trains to slightly different weights.
FLOOR_BOUNDARY_F1, FLOOR_SUBCELL_OA = 0.60, 0.52


@pytest.fixture(scope="module")
def detail_run(demo_world, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("detail_run")
    config = demo_overrides(demo_world)
    config["train"] = SHORT["train"]  # the demo's training settings, shorter
    config["infer"] = SHORT["infer"]
    config["evaluation"]["pixels"]["network"] = False
    path = workdir / "detail.yaml"
    path.write_text(yaml.safe_dump(config))
    return workdir, path


def test_the_1m_truth_never_reaches_training(detail_run):
    workdir, config = detail_run
    result = snakemake(workdir, "-n", "-p", "--forceall", "results/model/l2hnet.pt", configfile=config)
    assert result.returncode == 0, result.stderr
    commands = " ".join(shell_commands(result.stdout + result.stderr))
    assert " train " in commands and "truth_1m" not in commands


def test_the_demo_map_keeps_its_1m_detail(detail_run):
    workdir, config = detail_run
    result = snakemake(workdir, "results/reports/pixels.json", configfile=config)
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads((workdir / "results" / "reports" / "pixels.json").read_text())
    assert scores["n_pixels"] > 5_000_000 and scores["excluded_pixels"] > 1_000_000
    held_out = scores["sources"]["map"]
    labelled = scores["where_labelled"]["sources"]
    print(f"held out: boundary F1 {held_out['boundary_f1']:.3f}, sub-cell OA {held_out['subcell_oa']:.3f}, "
          f"OA {held_out['oa']:.3f}; consensus label where labelled: boundary F1 "
          f"{labelled['consensus_label']['boundary_f1']:.3f}, sub-cell OA {labelled['consensus_label']['subcell_oa']:.3f}")
    assert held_out["boundary_f1"] > FLOOR_BOUNDARY_F1 and held_out["subcell_oa"] > FLOOR_SUBCELL_OA
    assert labelled["map"]["boundary_f1"] > labelled["consensus_label"]["boundary_f1"] + 0.15
    assert labelled["map"]["subcell_oa"] > labelled["consensus_label"]["subcell_oa"] + 0.10
    assert (workdir / "results" / "reports" / "detail.png").stat().st_size > 10_000
