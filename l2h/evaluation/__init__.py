"""Evaluation (rules/evaluate.smk): accuracy at reference points and pixels, beside the coarse products,
and the comparison with survey statistics."""
