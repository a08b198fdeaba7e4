"""The catalogue of a run's outputs (rules/stac.smk): a STAC Collection of its map COGs."""
