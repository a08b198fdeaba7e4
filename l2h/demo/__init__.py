"""The demo world: a small fictional country with a hidden 1 m truth and every l2h input in the real
formats of the real sources (10 m products on their own tile grids, OSM XML, imagery, provinces,
reference points, a land survey table). See `l2h.demo.world` for the layout."""

from l2h.demo.world import SURVEY_LEGEND, generate_demo_world

__all__ = ["SURVEY_LEGEND", "generate_demo_world"]
