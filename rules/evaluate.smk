# Accuracy assessment (reference points: our map and every product) and the comparison with survey
# statistics, both into results/reports/ and the Snakemake report.

EVAL_POINTS = (CFG.get("evaluation") or {}).get("points")
EVAL_SURVEY = (CFG.get("evaluation") or {}).get("survey")
EVAL_STRATIFIED = bool(EVAL_POINTS and EVAL_POINTS.get("strata"))


if EVAL_POINTS:

    rule evaluate:
        message:
            "Accuracy of the map and {params.n_products} products at the reference points"
        input:
            map="results/maps/national.tif",
            model="results/model/l2hnet.onnx",
            products=product_manifests,
            points=EVAL_POINTS["file"],
            blocks="resources/blocks.csv",
            training_blocks="resources/training_blocks.csv",
        output:
            json="results/reports/accuracy.json",
            class_metrics=report("results/reports/class_metrics.csv", category="Accuracy",
                labels={"figure": "per-class metrics (table)"},
                caption="../report/accuracy_class_metrics.rst"),
            confusion_csv=report("results/reports/confusion.csv", category="Accuracy",
                labels={"figure": "confusion matrices (table)"},
                caption="../report/accuracy_confusion_csv.rst"),
            region_oa_csv=report("results/reports/region_oa.csv", category="Accuracy",
                labels={"figure": "OA per region (table)"},
                caption="../report/accuracy_region_oa.rst"),
            points=report("results/reports/points.csv", category="Accuracy",
                labels={"figure": "points scored per source (table)"},
                caption="../report/accuracy_points.rst"),
            confusion=report("results/reports/confusion.png", category="Accuracy",
                labels={"figure": "confusion matrices"},
                caption="../report/accuracy_confusion.rst"),
            region_oa=report("results/reports/region_oa.png", category="Accuracy",
                labels={"figure": "OA per region"},
                caption="../report/accuracy_region_oa.rst"),
            sources=report("results/reports/sources.png", category="Accuracy",
                labels={"figure": "map vs products"},
                caption="../report/accuracy_sources.rst"),
            legend=report("results/reports/legend.png", category="Accuracy",
                labels={"figure": "class legend"},
                caption="../report/accuracy_legend.rst"),
            areas=report("results/reports/area_estimates.csv", category="Accuracy",
                labels={"figure": "area-weighted estimates (table)"},
                caption="../report/accuracy_area_estimates.rst") if EVAL_STRATIFIED else [],
        params:
            n_products=len(PRODUCT_IDS),
            settings=json.dumps(EVAL_POINTS),
            products=lambda w, input: " ".join(f"--product {shlex.quote(m)}" for m in input.products),
            region_args=REGION_FILE_ARGS,
            run_name=CFG["run"]["name"],
            crs=GRID.crs,
            out_dir=lambda w, output: str(Path(output.json).parent),
            code_version=code_version("evaluate"),
        log:
            "logs/evaluate.log",
        benchmark:
            "benchmarks/evaluate.tsv"
        threads: 1
        resources:
            mem_mb=3000,
        conda:
            "../envs/geo.yaml"
        shell:
            "l2h --log {log} evaluate --settings {params.settings:q} --map {input.map:q} {params.products}"
            " {params.region_args} --run-name {params.run_name:q} --blocks {input.blocks:q}"
            " --training-blocks {input.training_blocks:q} --crs {params.crs:q} --out-dir {params.out_dir:q}"
            " --model {input.model:q}"


if EVAL_SURVEY:

    rule survey:
        message:
            "Class shares of the map against the survey statistics, {params.n} regions"
        input:
            maps=expand("results/maps/{region}.tif", region=REGION_SLUGS),
            table=EVAL_SURVEY["table"],
        output:
            shares=report("results/reports/survey_shares.csv", category="Survey statistics",
                          labels={"figure": "class shares (table)"}, caption="../report/survey_shares.rst"),
            error=report("results/reports/survey_error.csv", category="Survey statistics",
                         labels={"figure": "weighted error (table)"}, caption="../report/survey_error.rst"),
            figure=report("results/reports/survey.png", category="Survey statistics",
                          labels={"figure": "class shares per region"}, caption="../report/survey_figure.rst"),
        params:
            n=len(REGION_SLUGS),
            settings=json.dumps(EVAL_SURVEY),
            region_args=REGION_FILE_ARGS,
            out_dir=lambda w, output: str(Path(output.error).parent),
            code_version=code_version("survey"),
        log:
            "logs/survey.log",
        benchmark:
            "benchmarks/survey.tsv"
        threads: 1
        resources:
            mem_mb=2000,
        conda:
            "../envs/geo.yaml"
        shell:
            "l2h --log {log} survey --settings {params.settings:q} --map {input.maps:q} {params.region_args}"
            " --out-dir {params.out_dir:q}"


if EVAL_PIXELS:

    rule score_pixels:
        message:
            "Wall-to-wall scores and 1 m detail of the map against {params.n_refs} reference raster(s)"
        input:
            map="results/maps/national.tif",
            network="results/maps/network/national.tif" if NETWORK_MAP else [],
            labels=expand("resources/labels/{region}.tif", region=REGION_SLUGS),
            products=product_manifests,
            references=EVAL_PIXELS["reference"],
            imagery=expand("resources/imagery/{region}.vrt", region=REGION_SLUGS) if IMAGERY_CACHED
            else [IMAGERY_MOSAIC],
            blocks="resources/blocks.csv",
            training_blocks="resources/training_blocks.csv",
        output:
            json=report("results/reports/pixels.json", category="Accuracy",
                        labels={"figure": "wall-to-wall scores (JSON)"}, caption="../report/pixels_json.rst"),
            figure=report("results/reports/detail.png", category="Accuracy",
                          labels={"figure": "1 m detail"}, caption="../report/pixels_detail.rst"),
        params:
            n_refs=len(EVAL_PIXELS["reference"]),
            settings=json.dumps({"legend": EVAL_PIXELS.get("legend") or EVAL_POINTS["legend"],
                                 "mapping": EVAL_PIXELS.get("mapping") or EVAL_POINTS["mapping"]}),
            products=lambda w, input: " ".join(f"--product {shlex.quote(m)}" for m in input.products),
            network=lambda w, input: f"--extra-map network={shlex.quote(input.network)}" if input.network else "",
            recode=" ".join(f"{k}={v}" for k, v in (EVAL_PIXELS.get("recode") or {}).items()),
            cell_size=EVAL_PIXELS.get("cell_size") or CFG["labels"]["resolution"],
            tolerance=EVAL_PIXELS.get("boundary_tolerance", 2.0),
            crs=GRID.crs,
            code_version=code_version("score-pixels"),
        log:
            "logs/score_pixels.log",
        benchmark:
            "benchmarks/score_pixels.tsv"
        threads: 1
        resources:
            mem_mb=3000,
        conda:
            "../envs/geo.yaml"
        shell:
            "l2h --log {log} score-pixels --map {input.map:q} {params.network} --reference {input.references:q}"
            " --settings {params.settings:q} --recode {params.recode} {params.products}"
            " --coarse-label {input.labels:q} --blocks {input.blocks:q} --training-blocks {input.training_blocks:q}"
            " --crs {params.crs:q} --cell-size {params.cell_size} --boundary-tolerance {params.tolerance}"
            " --imagery {input.imagery:q} --figure {output.figure:q} --out {output.json:q}"
