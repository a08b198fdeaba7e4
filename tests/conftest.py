"""Shared fixtures: the demo world (generated once per test session) and one full workflow run on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import export_tiny_model

from l2h.demo.world import generate_demo_world

SMALL_SIZE = (1536, 1024)  # width_m, height_m of `small_demo_world`


@pytest.fixture(scope="session")
def demo_world(tmp_path_factory) -> Path:
    """The default demo world (4096 x 3072 m, seed 42); its folder (see l2h.demo.world for the layout)."""
    out = tmp_path_factory.mktemp("demo_world")
    generate_demo_world(out, seed=42)
    return out


@pytest.fixture(scope="session")
def small_demo_world(tmp_path_factory) -> Path:
    """A small demo world (1536 x 1024 m, seed 42) for quick and determinism tests; its folder."""
    out = tmp_path_factory.mktemp("small_demo_world")
    generate_demo_world(out, seed=42, width_m=SMALL_SIZE[0], height_m=SMALL_SIZE[1])
    return out


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: intra-op threads only add overhead (large on a busy 2-core machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def http_demo_run(demo_world, tmp_path_factory):
    """The whole demo workflow once per session (products fetched over HTTP from 127.0.0.1, tiny
    training, evaluation and survey): (workdir, config path, the HTTP requests served). Tests that
    change its files must leave them as a rerun of the same command would."""
    import yaml
    from helpers import demo_overrides, snakemake
    from httpserver import serve

    workdir = tmp_path_factory.mktemp("demo_run")
    with serve(demo_world / "mirror") as server:
        config = workdir / "http.yaml"
        config.write_text(yaml.safe_dump(demo_overrides(demo_world, mirror=server.url("").rstrip("/"))))
        result = snakemake(workdir, configfile=config)
        requests = list(server.requests)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, config, requests


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    return export_tiny_model(tmp_path_factory.mktemp("model") / "tiny.onnx")
