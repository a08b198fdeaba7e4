# Mosaics: each region's blocks into a clipped Cloud-Optimized GeoTIFF, then the national one; each
# with its QGIS style (.qml) and, for class maps, GDAL's sidecar of class names (.tif.aux.xml).


rule mosaic_region:
    message:
        "Region {wildcards.region}: COG of its blocks"
    input:
        chunks=region_chunk_manifests,
        region="resources/regions/{region}.gpkg",
    output:
        cog="results/maps/{region}.tif",
        aux="results/maps/{region}.tif.aux.xml",
        qml="results/maps/{region}.qml",
        quicklook=report("results/maps/{region}.png", category="Maps", labels={"region": "{region}"},
                         caption="../report/map_quicklook.rst"),
    params:
        resolution=GRID.resolution,
        code_version=code_version("mosaic"),
    log:
        "logs/mosaic_region/{region}.log",
    benchmark:
        "benchmarks/mosaic_region/{region}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
    conda:
        "../envs/geo.yaml"
    shell:
        "l2h --log {log} mosaic --blocks {input.chunks:q} --region {input.region:q}"
        " --resolution {params.resolution} --out {output.cog:q} --quicklook {output.quicklook:q}"


rule mosaic_national:
    message:
        "National COG of {params.n} regions"
    input:
        maps=expand("results/maps/{region}.tif", region=REGION_SLUGS),
        regions=expand("resources/regions/{region}.gpkg", region=REGION_SLUGS),
    output:
        cog="results/maps/national.tif",
        aux="results/maps/national.tif.aux.xml",
        qml="results/maps/national.qml",
        quicklook=report("results/maps/national.png", category="Maps", labels={"region": "national"},
                         caption="../report/map_quicklook.rst"),
    params:
        n=len(REGION_SLUGS),
        resolution=GRID.resolution,
        title=CFG["run"]["name"],
        code_version=code_version("mosaic"),
    log:
        "logs/mosaic_national.log",
    benchmark:
        "benchmarks/mosaic_national.tsv"
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        "../envs/geo.yaml"
    shell:
        "l2h --log {log} mosaic --blocks {input.maps:q} --region {input.regions:q} --title {params.title:q}"
        " --resolution {params.resolution} --out {output.cog:q} --quicklook {output.quicklook:q}"


rule mosaic_confidence_region:
    message:
        "Region {wildcards.region}: COG of its blocks' confidence"
    input:
        chunks=region_chunk_manifests,
        region="resources/regions/{region}.gpkg",
    output:
        cog="results/maps/confidence/{region}.tif",
        qml="results/maps/confidence/{region}.qml",
        quicklook=report("results/maps/confidence/{region}.png", category="Maps",
                         labels={"region": "{region}", "layer": "confidence"},
                         caption="../report/confidence_quicklook.rst"),
    params:
        resolution=GRID.resolution,
        code_version=code_version("mosaic"),
    log:
        "logs/mosaic_confidence_region/{region}.log",
    benchmark:
        "benchmarks/mosaic_confidence_region/{region}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
    conda:
        "../envs/geo.yaml"
    shell:
        "l2h --log {log} mosaic --layer confidence --blocks {input.chunks:q} --region {input.region:q}"
        " --resolution {params.resolution} --out {output.cog:q} --quicklook {output.quicklook:q}"


rule mosaic_confidence_national:
    message:
        "National COG of the confidence of {params.n} regions"
    input:
        maps=expand("results/maps/confidence/{region}.tif", region=REGION_SLUGS),
        regions=expand("resources/regions/{region}.gpkg", region=REGION_SLUGS),
    output:
        cog="results/maps/confidence/national.tif",
        qml="results/maps/confidence/national.qml",
        quicklook=report("results/maps/confidence/national.png", category="Maps",
                         labels={"region": "national", "layer": "confidence"},
                         caption="../report/confidence_quicklook.rst"),
    params:
        n=len(REGION_SLUGS),
        resolution=GRID.resolution,
        title=CFG["run"]["name"],
        code_version=code_version("mosaic"),
    log:
        "logs/mosaic_confidence_national.log",
    benchmark:
        "benchmarks/mosaic_confidence_national.tsv"
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        "../envs/geo.yaml"
    shell:
        "l2h --log {log} mosaic --layer confidence --blocks {input.maps:q} --region {input.regions:q}"
        " --title {params.title:q} --resolution {params.resolution} --out {output.cog:q}"
        " --quicklook {output.quicklook:q}"


if NETWORK_MAP:

    rule mosaic_network:
        message:
            "National COG of the network alone (no label prior), {params.n} regions"
        input:
            chunks=[chunk_manifest_path(r, n) for r, chunks in CHUNKS.items() for n in range(len(chunks))],
            regions=expand("resources/regions/{region}.gpkg", region=REGION_SLUGS),
        output:
            cog="results/maps/network/national.tif",
            aux="results/maps/network/national.tif.aux.xml",
            qml="results/maps/network/national.qml",
            quicklook=report("results/maps/network/national.png", category="Maps",
                             labels={"region": "national", "layer": "network alone"},
                             caption="../report/network_quicklook.rst"),
        params:
            n=len(REGION_SLUGS),
            resolution=GRID.resolution,
            title=CFG["run"]["name"],
            code_version=code_version("mosaic"),
        log:
            "logs/mosaic_network.log",
        benchmark:
            "benchmarks/mosaic_network.tsv"
        threads: 1
        resources:
            mem_mb=4000,
        conda:
            "../envs/geo.yaml"
        shell:
            "l2h --log {log} mosaic --layer network --blocks {input.chunks:q} --region {input.regions:q}"
            " --title {params.title:q} --resolution {params.resolution} --out {output.cog:q}"
            " --quicklook {output.quicklook:q}"
