"""Shared fixtures: the demo world (generated once per test session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from l2h.demo import generate_demo_world

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
