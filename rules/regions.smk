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
        name_field=CFG["regions"]["name_field"],
        layer=f"--layer {shlex.quote(CFG['regions']['layer'])}" if CFG["regions"]["layer"] else "",
        slug_field=f"--slug-field {shlex.quote(CFG['regions']['slug_field'])}" if CFG["regions"]["slug_field"] else "",
        code_version=code_version("regions", "io"),
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
        "l2h --log {log} region-geometry --regions {input.regions:q} --region {wildcards.region}"
        " --crs {params.crs:q} --name-field {params.name_field:q} {params.layer} {params.slug_field}"
        " --out {output:q}"
