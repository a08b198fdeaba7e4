"""The demo workflow to the accuracy assessment and the survey comparison, then `snakemake --report`:
every figure and table declared with report() is in the archive."""

import json
import zipfile

import pandas as pd
import pytest
from helpers import snakemake

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
    for entry in (doc["map"], *doc["products"].values()):
        assert 0 < entry["oa"] <= 1 and entry["oa_ci95"][0] <= entry["oa"] <= entry["oa_ci95"][1]
        assert -1 <= entry["kappa"] <= 1 and 0 <= entry["miou"] <= 1
        assert entry["points"]["scored"] == entry["n_points"]
        assert sum(entry["points"].values()) == doc["reference"]["n_points"] == 2000
        assert entry["area_weighted"]["oa_ci95"][0] <= entry["area_weighted"]["oa"]
    # the products against the demo truth: FROM-GLC10 is the noisiest of the three by design
    assert doc["products"]["fromglc10"]["oa"] < doc["products"]["esa_worldcover"]["oa"]
    regions = pd.read_csv(report_run / "results/reports/region_oa.csv")
    assert {"cote_verte", "northmoor", "riverside"} <= set(regions["region"])


def test_survey_comparison_covers_every_region(report_run):
    errors = pd.read_csv(report_run / "results/reports/survey_error.csv").set_index("region")
    assert set(errors.index) == {"cote_verte", "northmoor", "riverside", "national"}
    assert ((errors["weighted_error"] >= 0) & (errors["weighted_error"] < 1)).all()


def test_report_embeds_every_figure_and_table(report_run):
    with zipfile.ZipFile(report_run / "report.zip") as archive:
        names = archive.namelist()
        index = next(n for n in names if n.endswith("report.html"))
        html = archive.read(index).decode("utf-8")
    for name in FIGURES + TABLES:
        assert any(n.endswith(f"/{name}") for n in names), name  # data/raw/<id>/<file name>
    assert "Olofsson" in html and "Survey statistics" in html and "Accuracy" in html
