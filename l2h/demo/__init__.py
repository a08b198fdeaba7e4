"""The demo world: a small fictional country with a hidden 1 m truth and every l2h input in the real
formats of the real sources (10 m products on their own tile grids, OSM XML, imagery, provinces,
reference points, a land survey table). `l2h.demo.world.generate_demo_world` makes it and
documents the layout; this package imports nothing, so that the `l2h` command starts fast."""
