"""Synthetic national-like block tables for the sampling tests and bench/sampling_national.py:
the block statistics a country of 34 regions would give, without the country."""

from __future__ import annotations

import numpy as np
import pandas as pd

from l2h.core.errors import ConfigError
from l2h.sampling.sample import FULL_BLOCK_KM2, SHARE_COLUMNS

#                 tree shrub crop grass bldg bare water wetl snow moss road
_ARCHETYPES = {
    "desert":    [.02, .08, .05, .18, .010, .62, .010, .005, .010, .001, .004],
    "northeast": [.30, .02, .48, .06, .040, .01, .030, .040, .000, .000, .020],
    "south":     [.58, .06, .20, .03, .050, .01, .040, .010, .000, .000, .020],
    "plain":     [.06, .01, .66, .04, .120, .02, .030, .010, .000, .000, .050],
    "tibet":     [.02, .05, .01, .50, .002, .22, .040, .040, .060, .060, .003],
    "steppe":    [.05, .06, .15, .55, .020, .12, .020, .020, .000, .002, .010],
    "coast":     [.22, .01, .28, .03, .250, .01, .100, .040, .000, .000, .060],
}


def synthetic_blocks(n_blocks: int, n_regions: int = 34, seed: int = 0) -> pd.DataFrame:
    """A national-like block table: regions of different landscapes and sizes, varied label coverage.

    Regions cycle through archetypes (desert: bare; northeast: cropland + forest; south: forest;
    plain: cropland + built-up; tibet: grass, bare, snow, moss; steppe: grass; coast: built-up +
    water), each with its own perturbed class mix and block heterogeneity. Block area is a full
    16384 m block (268.4 km²) except ~12 % edge blocks (2-100 % of it); labelled_share ~ Beta(5, 1.8)
    with ~8 % poorly labelled blocks (0-0.25). Shares are Dirichlet draws around the region's mix.
    """
    if n_blocks < 1 or n_regions < 1:
        raise ConfigError("synthetic_blocks needs n_blocks >= 1 and n_regions >= 1")
    rng = np.random.default_rng(seed)
    kinds = list(_ARCHETYPES)
    region_kind = [kinds[i % len(kinds)] for i in range(n_regions)]
    region_names = [f"R{i + 1:02d}-{kind}" for i, kind in enumerate(region_kind)]
    weights = rng.lognormal(0.0, 0.8, n_regions)
    weights *= np.array([2.5 if k in ("desert", "tibet") else 1.0 for k in region_kind])
    counts = np.ones(n_regions, dtype=np.int64) * min(1, n_blocks // n_regions)
    rest = n_blocks - counts.sum()
    counts += rng.multinomial(rest, weights / weights.sum())
    region_of_block = np.repeat(np.arange(n_regions), counts)
    n = len(region_of_block)
    mixes = []
    conc = []
    for kind in region_kind:
        base = np.array(_ARCHETYPES[kind], dtype=float) + 1e-4
        mix = base * rng.lognormal(0.0, 0.35, len(base))
        mixes.append(mix / mix.sum())
        conc.append(rng.uniform(3.0, 15.0))
    alpha = np.array(mixes)[region_of_block] * np.array(conc)[region_of_block, None]
    g = rng.gamma(np.maximum(alpha, 1e-3))
    shares = g / g.sum(axis=1, keepdims=True)
    shares = np.where(np.isfinite(shares), shares, 0.0)
    bad = shares.sum(axis=1) <= 0
    shares[bad] = np.array(mixes)[region_of_block[bad]]
    area = np.full(n, FULL_BLOCK_KM2)
    edge = rng.random(n) < 0.12
    area[edge] *= rng.uniform(0.02, 1.0, edge.sum())
    ls = rng.beta(5.0, 1.8, n)
    poor = rng.random(n) < 0.08
    ls[poor] = rng.uniform(0.0, 0.25, poor.sum())
    df = pd.DataFrame({
        "block_id": [f"B{i:06d}" for i in range(n)],
        "region": np.array(region_names)[region_of_block],
        "area_km2": area,
        "labelled_share": ls,
    })
    for j, col in enumerate(SHARE_COLUMNS):
        df[col] = shares[:, j]
    return df
