# The STAC catalogue of the run's maps: a Collection with one Item per COG, beside results/maps.

STAC_LAYERS = {"map": "results/maps/{region}.tif"}
if CFG["infer"]["confidence"]:
    STAC_LAYERS["confidence"] = "results/maps/confidence/{region}.tif"
STAC_PLACES = REGION_SLUGS + ["national"]


rule stac:
    message:
        "STAC Collection of {params.n} map COGs"
    input:
        maps=expand(STAC_LAYERS["map"], region=STAC_PLACES),
        confidence=expand(STAC_LAYERS["confidence"], region=STAC_PLACES) if "confidence" in STAC_LAYERS else [],
        sidecars=expand("results/maps/{region}.{ext}", region=STAC_PLACES, ext=["tif.aux.xml", "qml"]),
        regions=expand("resources/regions/{region}.gpkg", region=REGION_SLUGS),
        model="results/model/l2hnet.onnx",
        accuracy="results/reports/accuracy.json" if EVAL_POINTS else [],
        imagery_items=expand("resources/imagery/{region}.items.json", region=REGION_SLUGS) if IMAGERY_STAC else [],
    output:
        collection="results/stac/collection.json",
        item_files=expand("results/stac/{layer}-{region}/{layer}-{region}.json", layer=list(STAC_LAYERS),
                     region=STAC_PLACES),
    params:
        n=len(STAC_LAYERS) * len(STAC_PLACES),
        settings=json.dumps(CFG["train"], sort_keys=True),
        accuracy=lambda w, input: f"--accuracy {shlex.quote(input.accuracy)}" if input.accuracy else "",
        confidence=lambda w, input: " ".join(["--confidence", *map(shlex.quote, input.confidence)])
        if input.confidence else "",
        imagery_items=lambda w, input: " ".join(["--imagery-items", *map(shlex.quote, input.imagery_items)])
        if input.imagery_items else "",
        name=CFG["run"]["name"],
        code_version=code_version("stac"),
    log:
        "logs/stac.log",
    benchmark:
        "benchmarks/stac.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../envs/geo.yaml"
    shell:
        "l2h --log {log} stac --maps {input.maps:q} {params.confidence} --regions {input.regions:q}"
        " --model {input.model:q} --settings {params.settings:q} {params.accuracy} --name {params.name:q}"
        " {params.imagery_items}"
        " --out {output.collection:q}"
