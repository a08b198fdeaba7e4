"""Sampling (rules/sampling.smk): per-block label statistics and the integer program that picks the
training blocks."""
