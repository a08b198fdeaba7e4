# Regions: each region's polygon, merged, repaired and reprojected to the run's CRS.


rule region_geometry:
    message:
        "Region {wildcards.region}: geometry in the run's CRS"
    input:
        regions=CFG["regions"]["file"],
    output:
        "resources/regions/{region}.gpkg",
    params:
        crs=GRID.crs,
        region_args=REGION_FILE_ARGS,
        code_version=code_version("region-geometry"),
    log:
        "logs/region_geometry/{region}.log",
    benchmark:
        "benchmarks/region_geometry/{region}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../envs/geo.yaml"
    shell:
        "l2h --log {log} region-geometry {params.region_args} --region {wildcards.region}"
        " --crs {params.crs:q} --out {output:q}"
