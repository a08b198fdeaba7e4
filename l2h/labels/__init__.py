"""Training labels (rules/labels.smk): OSM roads and the consensus 10 m label of the products."""
