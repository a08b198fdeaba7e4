"""The demo workflow to the accuracy assessment and the survey comparison, then `snakemake --report`:
every figure and table declared with report() is in the archive."""

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from helpers import ROOT, snakemake
from sklearn.metrics import accuracy_score, cohen_kappa_score, jaccard_score

from l2h.core.classes import BY_KEY

pytestmark = pytest.mark.workflow
FIGURES = ("confusion.png", "region_oa.png", "sources.png", "legend.png", "survey.png")
TABLES = ("class_metrics.csv", "confusion.csv", "region_oa.csv", "points.csv", "area_estimates.csv",
          "survey_shares.csv", "survey_error.csv")


@pytest.fixture(scope="module")
def report_run(http_demo_run):
    """The session's demo run, then its report archive."""
    workdir, config, _ = http_demo_run
    report = snakemake(workdir, "--report", str(workdir / "report.zip"), configfile=config)
    assert report.returncode == 0, report.stderr[-3000:]
    return workdir


def test_accuracy_json_scores_the_map_and_every_product(report_run):
    doc = json.loads((report_run / "results/reports/accuracy.json").read_text())
    assert set(doc["products"]) == {"esa_worldcover", "esri_lulc", "fromglc10"}
    confusion = pd.read_csv(report_run / "results/reports/confusion.csv")
    for source, entry in (("map", doc["map"]), *doc["products"].items()):
        # OA, kappa and mIoU (over the reference's classes) as scikit-learn scores the points behind
        # confusion.csv; the JSON rounds to 6 decimals
        counts = confusion[confusion["source"] == source]
        ref, pred = (np.repeat(counts[column].to_numpy(), counts["count"].to_numpy()) for column in ("reference",
                                                                                                  "predicted"))
        assert len(ref) == entry["n_points"]
        assert entry["oa"] == pytest.approx(accuracy_score(ref, pred), abs=1e-6), source
        assert entry["kappa"] == pytest.approx(cohen_kappa_score(ref, pred), abs=1e-6), source
        assert entry["miou"] == pytest.approx(jaccard_score(ref, pred, labels=np.unique(ref), average="macro"),
                                              abs=1e-6), source
        assert entry["oa_ci95"][0] <= entry["oa"] <= entry["oa_ci95"][1]
        assert entry["points"]["scored"] == entry["n_points"]
        assert sum(entry["points"].values()) == doc["reference"]["n_points"] == 2000
        assert entry["area_weighted"]["oa_ci95"][0] <= entry["area_weighted"]["oa"]
    # the products against the demo truth: FROM-GLC10 is the noisiest of the three by design
    assert doc["products"]["fromglc10"]["oa"] < doc["products"]["esa_worldcover"]["oa"]
    regions = pd.read_csv(report_run / "results/reports/region_oa.csv")
    assert {"cote_verte", "northmoor", "riverside"} <= set(regions["region"])


def test_survey_comparison_covers_every_region(report_run, demo_world):
    """Per region and over all three, the weighted share error sum_c s_c |m_c - s_c| between the
    survey's class shares s (its table) and the region maps' m (their 1 m pixels counted here, our
    classes grouped by the config's survey mapping)."""
    errors = pd.read_csv(report_run / "results/reports/survey_error.csv").set_index("region")
    assert set(errors.index) == {"cote_verte", "northmoor", "riverside", "national"}
    survey = pd.read_csv(demo_world / "survey" / "survey.csv")
    survey["region"] = survey["province"].map({"Côte Verte": "cote_verte", "Northmoor": "northmoor",
                                               "Riverside": "riverside"})
    mapping = yaml.safe_load((ROOT / "workflow_config.yaml").read_text())["evaluation"]["survey"]["mapping"]
    theirs, ours = {}, {}
    for region, rows in survey.groupby("region"):
        theirs[region] = rows.groupby("class")["area_km2"].sum()
        with rasterio.open(report_run / f"results/maps/{region}.tif") as src:
            pixels = np.bincount(src.read(1).ravel(), minlength=256)
        ours[region] = pd.Series({key: pixels[BY_KEY[key].code] for key in mapping}).groupby(mapping).sum()
    theirs["national"], ours["national"] = sum(theirs.values()), sum(ours.values())
    for region in errors.index:
        classes = theirs[region].index.union(ours[region].index)
        s, m = (v.reindex(classes, fill_value=0) / v.sum() for v in (theirs[region], ours[region]))
        # the CSV's 6 decimals (5e-7), the survey areas' own 6 decimals (1e-6 relative) and 1e-6 to spare
        assert errors.loc[region, "weighted_error"] == pytest.approx(float((s * (m - s).abs()).sum()), abs=2e-6), region


def test_report_embeds_every_figure_and_table(report_run):
    with zipfile.ZipFile(report_run / "report.zip") as archive:
        names = archive.namelist()
        index = next(n for n in names if n.endswith("report.html"))
        html = archive.read(index).decode("utf-8")
    for name in FIGURES + TABLES:
        assert any(n.endswith(f"/{name}") for n in names), name  # data/raw/<id>/<file name>
    assert "Olofsson" in html and "Survey statistics" in html and "Accuracy" in html
