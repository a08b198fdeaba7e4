# Training (a GPU job in the cluster profile) and the ONNX export inference runs on.


rule train:
    message:
        "L2HNet: {params.steps} steps on {params.n_regions} regions' training blocks (resumes a killed run)"
    input:
        blocks="resources/blocks.csv",
        training_blocks="resources/training_blocks.csv",
        labels=expand("resources/labels/{region}.tif", region=REGION_SLUGS),
        label_sets=expand("resources/labels/{region}_sets.tif", region=REGION_SLUGS),
        imagery=[imagery_for_region(r) for r in REGION_SLUGS],
        roads=(expand("resources/roads/{region}.gpkg", region=REGION_SLUGS)
               if PRIOR_ROADS and CFG["train"]["self_training_steps"] else []),
    output:
        model="results/model/l2hnet.pt",
        metrics=report("results/model/metrics.csv", category="Model", labels={"table": "training metrics"},
                       caption="../report/train_metrics.rst"),
    params:
        settings=json.dumps(CFG["train"], sort_keys=True),
        labels=lambda w: "resources/labels/{region}.tif",
        label_sets=lambda w: "resources/labels/{region}_sets.tif",
        imagery=json.dumps({r: imagery_for_region(r) for r in REGION_SLUGS}, sort_keys=True),
        crs=GRID.crs,
        resolution=GRID.resolution,
        work_dir="results/model/training",
        n_regions=len(REGION_SLUGS),
        steps=CFG["train"]["steps"] + CFG["train"]["self_training_steps"],
        # the pseudo-labels of self-training use the prior as inference does
        prior=lambda w: (f"--prior-interpolation {CFG['infer']['prior_interpolation']}"
                         + (" --roads 'resources/roads/{region}.gpkg'" if PRIOR_ROADS else ""))
        if CFG["train"]["self_training_steps"] else "",
        code_version=code_version("train"),
    log:
        "logs/train.log",
    benchmark:
        "benchmarks/train.tsv"
    # every core it is given: Snakemake caps a rule's threads at --cores (the SLURM profile sets its own)
    threads: 256
    resources:
        mem_mb=8000,
    conda:
        "../envs/torch-gpu.yaml"
    shell:
        "l2h --log {log} train --blocks {input.blocks:q} --training-blocks {input.training_blocks:q}"
        " --labels {params.labels:q} --label-sets {params.label_sets:q} --imagery {params.imagery:q} --crs {params.crs:q}"
        " --resolution {params.resolution} --settings {params.settings:q} --work-dir {params.work_dir:q}"
        " --out {output.model:q} --metrics {output.metrics:q} {params.prior}"


rule export:
    message:
        "L2HNet: ONNX export and torch/onnxruntime parity check"
    input:
        "results/model/l2hnet.pt",
    output:
        onnx="results/model/l2hnet.onnx",
        parity="results/model/onnx_parity.json",
    params:
        code_version=code_version("export"),
    log:
        "logs/export.log",
    benchmark:
        "benchmarks/export.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../envs/torch-gpu.yaml"
    shell:
        "l2h --log {log} export --model {input:q} --out {output.onnx:q} --parity {output.parity:q}"
