# Imagery: many files joined into one mosaic VRT, and (optionally; always for tile services and STAC
# catalogs) each region's imagery cached block by block as local GeoTIFFs so GPU jobs read local files.

if len(IMAGERY_PATHS) > 1:

    rule imagery_vrt:
        message:
            "Imagery: mosaic VRT of {params.n} files"
        input:
            IMAGERY_PATHS,
        output:
            IMAGERY_MOSAIC,
        params:
            n=len(IMAGERY_PATHS),
            code_version=code_version("imagery-vrt"),
        log:
            "logs/imagery_vrt.log",
        benchmark:
            "benchmarks/imagery_vrt.tsv"
        threads: 1
        resources:
            mem_mb=500,
        conda:
            "../envs/geo.yaml"
        shell:
            "l2h --log {log} imagery-vrt --out {output:q} {input:q}"


if IMAGERY_CACHED:

    rule fetch_imagery:
        message:
            "Region {wildcards.region}: cache the imagery block by block"
        # a tile service or catalog is fetched where Snakemake runs (internet), local imagery on the cluster
        localrule: bool(IMAGERY_SERVICE)
        input:
            region="resources/regions/{region}.gpkg",
            imagery=[] if IMAGERY_SERVICE else IMAGERY_MOSAIC,
        output:
            vrt="resources/imagery/{region}.vrt",
            # which STAC items gave each block its pixels (provenance, in the STAC output)
            **({"provenance": "resources/imagery/{region}.items.json"} if IMAGERY_STAC else {}),
        params:
            source=lambda w, input: (" ".join(f"--{k} {shlex.quote(json.dumps(v, sort_keys=True))}"
                                              for k, v in IMAGERY_SERVICE.items()) if IMAGERY_SERVICE
                                     else f"--source {shlex.quote(input.imagery)}"),
            crs=GRID.crs,
            resolution=GRID.resolution,
            block_size=CFG["grid"]["block_size"],
            resampling=CFG["imagery"]["resampling"],
            code_version=code_version("fetch-imagery"),
        log:
            "logs/fetch_imagery/{region}.log",
        benchmark:
            "benchmarks/fetch_imagery/{region}.tsv"
        threads: 1
        resources:
            mem_mb=2000,
            downloads=1,
        conda:
            "../envs/geo.yaml"
        shell:
            "l2h --log {log} fetch-imagery {params.source} --region {input.region:q} --crs {params.crs:q}"
            " --resolution {params.resolution} --block-size {params.block_size}"
            " --resampling {params.resampling} --out {output.vrt:q}"

    rule imagery_context:
        message:
            "Region {wildcards.region}: its cached imagery with the neighbours' blocks around it"
        localrule: True  # a small VRT: no queue wait on a cluster
        input:
            # the region's own cache last: drawn over the neighbours' copies of shared border blocks
            lambda w: [f"resources/imagery/{r}.vrt" for r in (*IMAGERY_CONTEXT[w.region], w.region)],
        output:
            "resources/imagery/context/{region}.vrt",
        params:
            code_version=code_version("imagery-vrt"),
        log:
            "logs/imagery_context/{region}.log",
        benchmark:
            "benchmarks/imagery_context/{region}.tsv"
        threads: 1
        resources:
            mem_mb=500,
        conda:
            "../envs/geo.yaml"
        shell:
            "l2h --log {log} imagery-vrt --out {output:q} {input:q}"
