# Training-region sampling: statistics of every block's label, then the integer program.


rule block_stats:
    message:
        "Region {wildcards.region}: label statistics of the {params.n_blocks} blocks touching it"
    input:
        regions=CFG["regions"]["file"],
        label="resources/labels/{region}.tif",
    output:
        "resources/blocks/{region}.csv",
    params:
        n_blocks=lambda w: sum(w.region in b.touches for b in BLOCKS),
        crs=GRID.crs,
        resolution=GRID.resolution,
        block_size=CFG["grid"]["block_size"],
        region_args=REGION_FILE_ARGS,
        code_version=code_version("block-stats"),
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
        " --expect-blocks {params.n_blocks}"
        " --out {output:q}"


rule sample:
    message:
        "Training regions: choose ~{params.target_fraction} of the area with an integer program"
    input:
        blocks=expand("resources/blocks/{region}.csv", region=REGION_SLUGS),
        regions=expand("resources/regions/{region}.gpkg", region=REGION_SLUGS),
    output:
        selected="resources/training_blocks.csv",
        all_blocks="resources/blocks.csv",
        shares=report("results/sampling/class_shares.csv", category="Training regions",
                      labels={"figure": "class shares: selected vs overall"},
                      caption="../report/sampling_shares.rst"),
        summary="results/sampling/summary.json",
        map=report("results/sampling/training_blocks.png", category="Training regions",
                   labels={"figure": "map of training blocks"}, caption="../report/sampling_map.rst"),
    params:
        target_fraction=CFG["sampling"]["target_fraction"],
        tolerance=CFG["sampling"]["tolerance"],
        k=CFG["sampling"]["min_blocks_per_region"],
        min_labelled=CFG["sampling"]["min_labelled_share"],
        train_regions=(f"--train-regions {shlex.quote(json.dumps(CFG['sampling']['train_regions']))}"
                       if CFG["sampling"]["train_regions"] else ""),
        seed=CFG["sampling"]["seed"],
        time_limit=CFG["sampling"]["time_limit_s"],
        code_version=code_version("sample"),
    log:
        "logs/sample.log",
    benchmark:
        "benchmarks/sample.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=max(5, int(CFG["sampling"]["time_limit_s"] / 60) + 5),
    conda:
        "../envs/geo.yaml"
    shell:
        "l2h --log {log} sample --blocks {input.blocks:q} --region {input.regions:q}"
        " --target-fraction {params.target_fraction} --tolerance {params.tolerance}"
        " --min-blocks-per-region {params.k} --min-labelled-share {params.min_labelled} {params.train_regions}"
        " --seed {params.seed} --time-limit {params.time_limit} --out {output.selected:q}"
        " --all-blocks {output.all_blocks:q} --shares {output.shares:q} --summary {output.summary:q}"
        " --map {output.map:q}"
