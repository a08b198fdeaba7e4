# Training-region sampling: statistics of every block's label.


rule block_stats:
    message:
        "Region {wildcards.region}: label statistics of its {params.n_blocks} blocks"
    input:
        regions=CFG["regions"]["file"],
        label="resources/labels/{region}.tif",
    output:
        "resources/blocks/{region}.csv",
    params:
        n_blocks=lambda w: len(BLOCKS_BY_REGION[w.region]),
        crs=GRID.crs,
        resolution=GRID.resolution,
        block_size=CFG["grid"]["block_size"],
        region_args=REGION_FILE_ARGS,
        code_version=code_version("blocks", "blockstats", "regions", "io"),
    log:
        "logs/block_stats/{region}.log",
    benchmark:
        "benchmarks/block_stats/{region}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../envs/geo.yaml"
    shell:
        "l2h --log {log} block-stats {params.region_args} --region {wildcards.region} --crs {params.crs:q}"
        " --resolution {params.resolution} --block-size {params.block_size} --label {input.label:q}"
        " --out {output:q}"
