"""The workflow on a real SLURM cluster: profiles/slurm on the one-node cluster of
tests/slurm/cluster.sh (munge + slurmctld + slurmd, a fake GPU), one province from its labels to its
COG -- training and inference as `--gpus=1` jobs -- and the same map as a local run, run alongside
(~4 min on a busy 2-core machine, most of it SLURM status polling)."""

import os
import re
import subprocess
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import yaml
from helpers import ROOT, SNAKEMAKE, demo_overrides

pytestmark = pytest.mark.workflow
CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
PROFILE = ROOT / "profiles" / "slurm"
TEST_PROFILE = ROOT / "tests" / "slurm" / "profile"
REGION, REGION_NAME = "cote_verte", "Côte Verte"
TARGET = f"results/maps/{REGION}.tif"
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def profile(path: Path) -> dict:
    return yaml.safe_load((path / "config.yaml").read_text())


@pytest.fixture(scope="module")
def slurm_cluster():
    """A usable one-node cluster: started (and stopped afterwards) unless one already runs."""
    already = subprocess.run([CLUSTER, "status"], capture_output=True, text=True, timeout=60)
    if already.returncode != 0:
        started = subprocess.run([CLUSTER, "start"], capture_output=True, text=True, timeout=600)
        if started.returncode == 3:
            pytest.skip(f"SLURM cannot be installed or started here: {started.stderr.strip()}")
        assert started.returncode == 0, started.stderr
    yield
    if already.returncode != 0:
        stopped = subprocess.run([CLUSTER, "stop"], capture_output=True, text=True, timeout=120)
        assert stopped.returncode == 0, stopped.stderr
        # a configuration naming the stopped controller would stall every later Snakemake start ~9 s
        assert not Path("/etc/slurm/slurm.conf").exists()


@pytest.fixture(scope="module")
def small_config(small_demo_world, tmp_path_factory) -> Path:
    """The tiny-training demo overrides on the small demo world (~30 % of 1.2 km² cannot hold a
    block of each of its 3 provinces: half the area is sampled instead)."""
    config = demo_overrides(small_demo_world)
    config["sampling"] = {"target_fraction": 0.5, "tolerance": 0.1}
    path = tmp_path_factory.mktemp("slurm_config") / "small.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def one_province_config(small_config) -> Path:
    """small_config with a regions file holding only REGION: one province from labels to COG."""
    config = yaml.safe_load(small_config.read_text())
    provinces = gpd.read_file(config["regions"]["file"], engine="pyogrio")
    config["regions"]["file"] = str(small_config.parent / "one_province.gpkg")
    provinces[provinces["name"] == REGION_NAME].to_file(config["regions"]["file"], engine="pyogrio")
    path = small_config.parent / "one_province.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def slurm_and_local_runs(slurm_cluster, one_province_config, tmp_path_factory):
    """The province's COG through SLURM and, at the same time, locally. Both train with 2 threads
    (the test profile's set-threads, the local --cores 2): CPU training is bit-reproducible only at
    the same thread count (1 vs 2 threads: weights ~3e-3 apart after 6 steps, float sums reordered)."""
    slurm_dir, local_dir = tmp_path_factory.mktemp("slurm_run"), tmp_path_factory.mktemp("local_run")
    common = [*SNAKEMAKE, "--configfile", str(one_province_config), "--workflow-profile", "none", TARGET]
    local_log = local_dir.parent / f"{local_dir.name}.log"
    with local_log.open("w") as out:
        local = subprocess.Popen([*common, "-d", str(local_dir), "--cores", "2"], stdout=out,
                                 stderr=subprocess.STDOUT)
        slurm = subprocess.Popen([*common, "-d", str(slurm_dir), "--profile", str(PROFILE), "--profile",
                                  str(TEST_PROFILE)], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        try:
            slurm_log, _ = slurm.communicate(timeout=600)
            local.wait(timeout=300)
        finally:
            for proc in (slurm, local):
                if proc.poll() is None:
                    proc.terminate()  # Snakemake cancels its SLURM jobs on SIGTERM
                    proc.wait(timeout=60)
    assert slurm.returncode == 0, slurm_log[-4000:]
    assert local.returncode == 0, local_log.read_text()[-4000:]
    return slurm_dir, slurm_log, local_dir


def scontrol(job_id: str) -> dict:
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, check=True).stdout
    return dict(field.split("=", 1) for field in out.split() if "=" in field)


def test_jobs_went_through_slurm_with_a_gpu_for_training_and_inference(slurm_and_local_runs):
    workdir, log, _ = slurm_and_local_runs
    submitted: dict[str, list[tuple[str, Path]]] = {}  # log folder (rule or group) -> SLURM jobs
    for job_id, path in SUBMITTED.findall(log):
        kind = Path(path).relative_to(workdir / ".snakemake" / "slurm_logs").parts[0]
        submitted.setdefault(kind, []).append((job_id, Path(path)))
    gpu_kinds = {"group_model_export_train", "rule_infer"}
    assert submitted.keys() == {"group_labels_block_stats_harmonize_region_geometry_roads", "rule_sample",
                                *gpu_kinds, "rule_mosaic_region"}, submitted
    assert len(submitted["group_labels_block_stats_harmonize_region_geometry_roads"]) == 1  # one province
    assert len(submitted["rule_infer"]) == 1  # the province's 2 blocks in one job (infer.blocks_per_job 4)
    assert re.search(r"Finished jobid: \d+ \(Rule: fetch_product\)", log)  # a local rule: ran here
    for kind, jobs in submitted.items():
        for job_id, slurm_log in jobs:
            job = scontrol(job_id)
            assert job["JobState"] == "COMPLETED" and Path(job["WorkDir"]) == workdir, (kind, job)
            assert re.search(r"(\d+) of \1 steps \(100%\) done", slurm_log.read_text()), slurm_log
            assert (job.get("TresPerJob") == "gres:gpu:1") == (kind in gpu_kinds), (kind, job)
    assert scontrol(submitted["group_model_export_train"][0][0])["NumCPUs"] == "2"


def test_slurm_map_equals_the_local_map(slurm_and_local_runs):
    slurm_dir, _, local_dir = slurm_and_local_runs
    with rasterio.open(slurm_dir / TARGET) as a, rasterio.open(local_dir / TARGET) as b:
        slurm_map, local_map = a.read(1), b.read(1)
        assert a.profile == b.profile
    assert len(np.unique(slurm_map)) > 2  # a map, not nodata
    assert np.array_equal(slurm_map, local_map)


def test_test_profile_only_resizes_the_cluster_profile():
    """The test cluster's overrides keep the rules, resource names and GPUs of profiles/slurm."""
    user, test = profile(PROFILE), profile(TEST_PROFILE)
    assert user["executor"] == "slurm" and "executor" not in test
    assert test["set-resources"].keys() == user["set-resources"].keys()
    for rule, resources in user["set-resources"].items():
        assert test["set-resources"][rule].keys() == resources.keys(), rule
        assert test["set-resources"][rule].get("gpu") == resources.get("gpu"), rule
    assert test["set-threads"].keys() == user["set-threads"].keys()
    assert user["config"] == ["train={device: cuda}", "infer={device: cuda}"]
    assert test["config"] == ["train={device: cpu}", "infer={device: cpu}"]  # its fake GPU runs nothing
    for rule, threads in test["set-threads"].items():
        assert test["set-resources"][rule]["cpus_per_task"] == threads, rule
    for rule, threads in user["set-threads"].items():
        assert user["set-resources"][rule]["cpus_per_task"] == threads, rule


def test_cluster_profile_dry_run_groups_the_jobs(small_config, tmp_path):
    """Every key of profiles/slurm is known to Snakemake and the SLURM plugin (no cluster needed)."""
    result = subprocess.run([*SNAKEMAKE, "-d", str(tmp_path), "--configfile", str(small_config), "--workflow-profile",
                             "none", "--profile", str(PROFILE), "-n", TARGET],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    # a labels job per province, training + export in one GPU job; the 4 blocks the province's map
    # needs (its own 2 and a neighbour's 2 that touch it) in 2 inference jobs (infer.blocks_per_job 4)
    assert [out.count(f"Group job {group} ") for group in ("labels", "model")] == [3, 1], out[-3000:]
    assert re.search(r"^infer\s+2$", out, re.M), out[-3000:]
    # the GPU rules run on the GPU or stop (no silent CPU fallback on a cluster)
    infer = [line for line in out.splitlines() if " infer --model " in line]
    train = [line for line in out.splitlines() if " train --blocks " in line]
    assert len(infer) == 2 and all("--device cuda " in line for line in infer), infer
    assert len(train) == 1 and '"device": "cuda"' in train[0], train


def test_the_automatic_local_profile_only_repeats_the_cluster_profile():
    """Snakemake loads profiles/default on top of --profile, winning over it: each of its settings
    must be one the SLURM profile makes too, with the same value (no `cores`, no `latency-wait`)."""
    local, cluster = profile(ROOT / "profiles" / "default"), profile(PROFILE)
    assert local and all(key in cluster and cluster[key] == value for key, value in local.items()), local


def test_slurm_profile_by_name_after_make_slurm_profile(small_config, tmp_path):
    config_home = tmp_path / "config"
    env = {**os.environ, "XDG_CONFIG_HOME": str(config_home)}
    made = subprocess.run(["make", "-s", "-C", str(ROOT), "slurm-profile"], capture_output=True, text=True, env=env)
    assert made.returncode == 0, made.stderr
    assert (config_home / "snakemake" / "slurm").resolve() == PROFILE.resolve()
    again = subprocess.run(["make", "-s", "-C", str(ROOT), "slurm-profile"], capture_output=True, text=True, env=env)
    assert again.returncode == 0 and "already links" in again.stdout

    # as typed in the brief: no --workflow-profile, the profile by its name, from another folder
    result = subprocess.run([*SNAKEMAKE, "-d", str(tmp_path / "run"), "--configfile", str(small_config),
                             "--profile", "slurm", "-n", TARGET], capture_output=True, text=True, timeout=300,
                            env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert "Using profiles slurm and workflow specific profile" in out
    assert [out.count(f"Group job {group} ") for group in ("labels", "model")] == [3, 1], out[-3000:]

    # someone else's `slurm` profile is never replaced
    other = tmp_path / "other"
    (other / "snakemake" / "slurm").mkdir(parents=True)
    (other / "snakemake" / "slurm" / "config.yaml").write_text("jobs: 1\n")
    refused = subprocess.run(["make", "-s", "-C", str(ROOT), "slurm-profile"], capture_output=True, text=True,
                             env={**os.environ, "XDG_CONFIG_HOME": str(other)})
    assert refused.returncode != 0 and "left alone" in refused.stderr
    assert (other / "snakemake" / "slurm" / "config.yaml").read_text() == "jobs: 1\n"
