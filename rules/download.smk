# Inputs from the outside world: product tiles (resumable, verified) and the OSM extract. Both are
# local rules: on a cluster they run where Snakemake runs (a login node with internet access).


rule fetch_product:
    message:
        "Product {wildcards.product}: fetch the tiles the regions need"
    localrule: True
    output:
        "resources/raw/{product}/manifest.json",
    params:
        spec=lambda w: json.dumps(CFG["products"][w.product], sort_keys=True),
        bounds=json.dumps([REGION_BOUNDS[r] for r in REGION_SLUGS]),
        max_workers=CFG["download"]["max_workers"],
        retries=CFG["download"]["retries"],
        backoff=CFG["download"]["backoff_s"],
        timeout=CFG["download"]["timeout_s"],
        code_version=code_version("download"),
    log:
        "logs/fetch_product/{product}.log",
    benchmark:
        "benchmarks/fetch_product/{product}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        downloads=1,
    retries: 2
    conda:
        "../envs/geo.yaml"
    shell:
        "l2h --log {log} download --product {wildcards.product} --spec {params.spec:q}"
        " --bounds {params.bounds:q} --out {output:q} --max-workers {params.max_workers}"
        " --retries {params.retries} --backoff {params.backoff} --timeout {params.timeout}"


if OSM_IS_REMOTE:

    rule fetch_osm:
        message:
            "OpenStreetMap extract: download"
        localrule: True
        output:
            OSM_LOCAL,
        params:
            url=OSM,
            retries=CFG["download"]["retries"],
            timeout=CFG["download"]["timeout_s"],
        log:
            "logs/fetch_osm.log",
        benchmark:
            "benchmarks/fetch_osm.tsv"
        threads: 1
        resources:
            mem_mb=500,
            downloads=1,
        conda:
            "../envs/geo.yaml"
        shell:
            "l2h --log {log} download --url {params.url:q} --out {output:q}"
            " --retries {params.retries} --timeout {params.timeout}"
