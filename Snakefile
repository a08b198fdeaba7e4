# l2h: 1 m land-cover maps of a whole country from 10 m products, OSM roads and ~1 m imagery.
# Run `snakemake --cores all` (local; profiles/default is loaded automatically) -- see README.md.
import os

from snakemake.utils import min_version

min_version("9")


configfile: os.path.join(workflow.basedir, "workflow_config.yaml")


include: "rules/common.smk"


wildcard_constraints:
    region="|".join(REGION_SLUGS),
    product="|".join(PRODUCT_IDS),
    chunk=r"\d+",


report: "report/workflow.rst"


include: "rules/regions.smk"
include: "rules/download.smk"
include: "rules/imagery.smk"
include: "rules/labels.smk"
include: "rules/sampling.smk"
include: "rules/train.smk"
include: "rules/infer.smk"
include: "rules/mosaic.smk"
include: "rules/evaluate.smk"
include: "rules/stac.smk"


rule all:
    input:
        "results/maps/national.tif",
        "results/stac/collection.json",
        "results/model/onnx_parity.json",
        "results/maps/confidence/national.tif" if CFG["infer"]["confidence"] else [],
        expand("resources/imagery/{region}.vrt", region=REGION_SLUGS) if IMAGERY_CACHED else [],
        "results/reports/accuracy.json" if EVAL_POINTS else [],
        "results/reports/survey_error.csv" if EVAL_SURVEY else [],
        "results/reports/pixels.json" if EVAL_PIXELS else [],
    default_target: True
