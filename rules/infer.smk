# Inference: one job per chunk of `infer.blocks_per_job` blocks of a region (a SLURM GPU job in a
# national run). Each block is written as resources/pred/{region}/<block>.tif (+ _confidence.tif);
# the job's declared output is the chunk's manifest, which the mosaics read (l2h/maps/chunks.py).


rule infer:
    message:
        "Chunk {wildcards.chunk} of {wildcards.region}: {params.n} block(s) of 1 m land cover with onnxruntime"
    input:
        model="results/model/l2hnet.onnx",
        imagery=lambda w: imagery_for_region(w.region),
        masks=chunk_masks,
        label_sets=chunk_label_sets,
        roads=chunk_roads,
    output:
        chunk_manifest_path("{region}", "{chunk}"),
    params:
        # the block ids are a parameter: a changed grid or chunking reruns the job
        blocks=lambda w: " ".join(b.id for b in chunk_of(w)),
        n=lambda w: len(chunk_of(w)),
        block_size=CFG["grid"]["block_size"],
        resolution=GRID.resolution,
        crs=GRID.crs,
        tile=CFG["infer"]["tile"],
        batch=CFG["infer"]["batch"],
        device=CFG["infer"]["device"],
        gpu_concurrency=CFG["infer"]["gpu_concurrency"],
        confidence="--confidence" if CFG["infer"]["confidence"] else "",
        strict="--strict" if CFG["infer"]["strict"] else "",
        label_prior=lambda w, input: (f"--label-prior {CFG['infer']['label_prior']} --label-sets "
                                      + " ".join(shlex.quote(p) for p in input.label_sets)
                                      + f" --prior-interpolation {CFG['infer']['prior_interpolation']}"
                                      + (" --roads " + " ".join(shlex.quote(p) for p in input.roads)
                                         if input.roads else ""))
        if input.label_sets else "",
        network="--network" if NETWORK_MAP else "",
        flips=CFG["infer"]["flips"],
        code_version=code_version("infer"),
    log:
        "logs/infer/{region}/chunk_{chunk}.log",
    benchmark:
        "benchmarks/infer/{region}/chunk_{chunk}.tsv"
    threads: CFG["infer"]["threads"]
    resources:
        mem_mb=3000,
    conda:
        "../envs/ort-gpu.yaml"
    shell:
        "l2h --log {log} infer --model {input.model:q} --imagery {input.imagery:q} --blocks {params.blocks}"
        " --block-size {params.block_size} --resolution {params.resolution} --crs {params.crs:q}"
        " --mask {input.masks:q} --region {wildcards.region} --out-dir resources/pred/{wildcards.region}"
        " --manifest {output:q} {params.confidence} --tile {params.tile} --batch {params.batch}"
        " --threads {threads} --device {params.device} --gpu-concurrency {params.gpu_concurrency} --flips {params.flips} {params.strict} {params.label_prior}"
        " {params.network}"
