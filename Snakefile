# l2h: 1 m land-cover maps of a whole country from 10 m products, OSM roads and ~1 m imagery.
# Run `snakemake --profile profiles/default` (local) -- see README.md.
import os

from snakemake.utils import min_version

min_version("9")


configfile: os.path.join(workflow.basedir, "workflow_config.yaml")


include: "rules/common.smk"


wildcard_constraints:
    region="|".join(REGION_SLUGS),


report: "report/workflow.rst"


include: "rules/regions.smk"


rule all:
    input:
        expand("resources/regions/{region}.gpkg", region=REGION_SLUGS),
    default_target: True
