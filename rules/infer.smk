# Inference: one job per block (a SLURM GPU job in a national run; the slurm profile groups them).


rule infer:
    message:
        "Block {wildcards.block} of {wildcards.region}: 1 m land cover with onnxruntime"
    input:
        model="results/model/l2hnet.onnx",
        imagery=lambda w: imagery_for_region(w.region),
        masks=block_masks,
    output:
        classes="resources/pred/{region}/{block}.tif",
        **({"confidence": "resources/pred/{region}/{block}_confidence.tif"} if CFG["infer"]["confidence"] else {}),
    params:
        block_size=CFG["grid"]["block_size"],
        resolution=GRID.resolution,
        crs=GRID.crs,
        tile=CFG["infer"]["tile"],
        batch=CFG["infer"]["batch"],
        device=CFG["infer"]["device"],
        confidence=lambda w, output: f"--confidence {shlex.quote(output.confidence)}" if "confidence" in output.keys() else "",
        strict="--strict" if CFG["infer"]["strict"] else "",
        code_version=code_version("infer", "norm", "blocks", "regions", "io"),
    log:
        "logs/infer/{region}/{block}.log",
    benchmark:
        "benchmarks/infer/{region}/{block}.tsv"
    threads: CFG["infer"]["threads"]
    resources:
        mem_mb=3000,
    group:
        "infer"
    conda:
        "../envs/ort-gpu.yaml"
    shell:
        "l2h --log {log} infer --model {input.model:q} --imagery {input.imagery:q} --block {wildcards.block}"
        " --block-size {params.block_size} --resolution {params.resolution} --crs {params.crs:q}"
        " --mask {input.masks:q} --out {output.classes:q} {params.confidence} --tile {params.tile}"
        " --batch {params.batch} --threads {threads} --device {params.device} {params.strict}"
