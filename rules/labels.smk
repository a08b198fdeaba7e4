# Training labels: each region's roads from OSM, then the products' consensus on the 10 m grid with
# the roads burned in as class 11, its statistics and a quicklook.

if OSM:

    rule roads:
        message:
            "Region {wildcards.region}: OSM road surfaces"
        input:
            osm=OSM_LOCAL,
            region="resources/regions/{region}.gpkg",
        output:
            "resources/roads/{region}.gpkg",
        params:
            widths=json.dumps(CFG["roads"]["widths"], sort_keys=True),
            code_version=code_version("roads"),
        log:
            "logs/roads/{region}.log",
        benchmark:
            "benchmarks/roads/{region}.tsv"
        threads: 1
        resources:
            mem_mb=2000,
        conda:
            "../envs/geo.yaml"
        shell:
            "l2h --log {log} roads --osm {input.osm:q} --region {input.region:q}"
            " --widths {params.widths:q} --out {output:q}"


rule harmonize:
    message:
        "Region {wildcards.region}: consensus training label of {params.n_products} products"
    input:
        region="resources/regions/{region}.gpkg",
        products=product_manifests,
        roads="resources/roads/{region}.gpkg" if OSM else [],
    output:
        label="resources/labels/{region}.tif",
        sets="resources/labels/{region}_sets.tif",
        stats_csv=report("resources/labels/{region}_stats.csv", category="Training labels",
                         labels={"region": "{region}", "figure": "class statistics"},
                         caption="../report/label_stats.rst"),
        stats_json="resources/labels/{region}_stats.json",
        quicklook=report("resources/labels/{region}.png", category="Training labels",
                         labels={"region": "{region}", "figure": "label quicklook"},
                         caption="../report/label_quicklook.rst"),
    params:
        n_products=len(PRODUCT_IDS),
        products=lambda w, input: " ".join(f"--product {shlex.quote(m)}" for m in input.products),
        roads=lambda w, input: f"--roads {shlex.quote(input.roads)} --min-cover {CFG['roads']['min_cover']}"
        if OSM else "",
        resolution=CFG["labels"]["resolution"],
        agreement=CFG["labels"]["agreement"],
        window=CFG["labels"]["window"],
        code_version=code_version("harmonize"),
    log:
        "logs/harmonize/{region}.log",
    benchmark:
        "benchmarks/harmonize/{region}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
    conda:
        "../envs/geo.yaml"
    shell:
        "l2h --log {log} harmonize --region {input.region:q} {params.products} {params.roads}"
        " --resolution {params.resolution} --agreement {params.agreement} --window {params.window}"
        " --out {output.label:q} --sets-out {output.sets:q} --stats-csv {output.stats_csv:q} --stats-json {output.stats_json:q}"
        " --quicklook {output.quicklook:q}"
