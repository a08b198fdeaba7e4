"""Inputs (rules/regions.smk, download.smk, imagery.smk): region polygons, product tiles, the OSM extract and
the imagery, fetched, checked and put on the run's grid."""
