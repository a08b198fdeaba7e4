"""Configuration validation: every problem is reported with the key (and file) it concerns."""


import pytest
import yaml
from helpers import ROOT

from l2h.core.config import check_rules, load_config, resolve_paths, validate_config
from l2h.core.errors import ConfigError


@pytest.fixture
def default_config() -> dict:
    return yaml.safe_load((ROOT / "workflow_config.yaml").read_text(encoding="utf-8"))


def _without_demo_sources(config: dict) -> dict:
    """Point products at their official servers, drop OSM and the evaluation, leaving only regions/imagery paths."""
    for spec in config["products"].values():
        spec["base_url"] = None
    config["roads"]["osm"] = None
    config.pop("evaluation", None)
    return config


def test_default_config_is_valid(default_config):
    validate_config(default_config)


def test_unknown_key_is_named_with_the_known_ones(default_config):
    default_config["grid"]["pixel"] = 1
    with pytest.raises(ConfigError) as err:
        validate_config(default_config)
    assert "'grid.pixel'" in str(err.value)
    assert "crs, resolution" in str(err.value)


def test_unknown_top_level_key(default_config):
    default_config["regoins"] = {}
    with pytest.raises(ConfigError, match="'regoins' at the top level"):
        validate_config(default_config)


def test_wrong_type_names_key_expected_and_got(default_config):
    default_config["grid"]["resolution"] = "one metre"
    with pytest.raises(ConfigError) as err:
        validate_config(default_config)
    message = str(err.value)
    assert "'grid.resolution'" in message and "expected number or null" in message
    assert "'one metre' (string)" in message


def test_non_positive_resolution_rejected(default_config):
    default_config["grid"]["resolution"] = 0
    with pytest.raises(ConfigError, match="'grid.resolution'"):
        validate_config(default_config)


def test_missing_required_key(default_config):
    del default_config["regions"]["file"]
    with pytest.raises(ConfigError, match="'regions.file' is required"):
        validate_config(default_config)


def test_all_problems_reported_at_once(default_config):
    default_config["grid"]["crs"] = 32650
    default_config["imagery"]["paths"] = "one.tif"
    with pytest.raises(ConfigError) as err:
        validate_config(default_config)
    assert "'grid.crs'" in str(err.value) and "'imagery.paths'" in str(err.value)


def test_missing_file_named_with_its_key(tmp_path, default_config):
    _without_demo_sources(default_config)
    default_config["regions"]["file"] = "no/such/regions.gpkg"
    (tmp_path / "img.tif").write_bytes(b"")
    default_config["imagery"]["paths"] = ["img.tif"]
    with pytest.raises(ConfigError) as err:
        load_config(default_config, tmp_path)
    message = str(err.value)
    assert "'regions.file'" in message and str(tmp_path / "no/such/regions.gpkg") in message
    assert "imagery" not in message


def test_paths_resolve_against_root_and_globs_expand(tmp_path, default_config):
    _without_demo_sources(default_config)
    for name in ("b.tif", "a.tif"):
        (tmp_path / "img" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "img" / name).write_bytes(b"")
    (tmp_path / "r.gpkg").write_bytes(b"")
    default_config["regions"]["file"] = "r.gpkg"
    default_config["imagery"]["paths"] = ["img/*.tif", "/vsicurl/https://example.org/x.tif"]
    resolved = resolve_paths(default_config, tmp_path)
    assert resolved["regions"]["file"] == str(tmp_path / "r.gpkg")
    assert resolved["imagery"]["paths"] == [str(tmp_path / "img/a.tif"), str(tmp_path / "img/b.tif"),
                                            "/vsicurl/https://example.org/x.tif"]
    assert default_config["regions"]["file"] == "r.gpkg"  # the input is not modified


def test_glob_without_match_is_an_error(tmp_path, default_config):
    _without_demo_sources(default_config)
    (tmp_path / "r.gpkg").write_bytes(b"")
    default_config["regions"]["file"] = "r.gpkg"
    default_config["imagery"]["paths"] = ["img/*.tif"]
    with pytest.raises(ConfigError, match=r"'imagery.paths\[0\]': no file matches"):
        resolve_paths(default_config, tmp_path)


def test_every_schema_key_is_documented_in_the_default_config():
    """workflow_config.yaml must carry every key of the schema (it documents them inline)."""
    from l2h.core.config import load_schema

    config = yaml.safe_load((ROOT / "workflow_config.yaml").read_text(encoding="utf-8"))

    def walk(schema, node, prefix):
        for name, sub in schema.get("properties", {}).items():
            assert name in node, f"{prefix}{name} missing from workflow_config.yaml"
            if sub.get("type") == "object":
                walk(sub, node[name], f"{prefix}{name}.")

    walk(load_schema(), config, "")


def test_product_mirror_and_osm_paths_resolve_and_are_checked(tmp_path, default_config):
    _without_demo_sources(default_config)
    (tmp_path / "r.gpkg").write_bytes(b"")
    (tmp_path / "i.tif").write_bytes(b"")
    (tmp_path / "mirror").mkdir()
    default_config["regions"]["file"] = "r.gpkg"
    default_config["imagery"]["paths"] = ["i.tif"]
    default_config["products"]["esa_worldcover"]["base_url"] = "mirror"
    default_config["products"]["fromglc10"]["base_url"] = "http://127.0.0.1:9/fromglc10"
    default_config["roads"]["osm"] = "osm/missing.osm.pbf"
    with pytest.raises(ConfigError, match=r"'roads.osm': file not found: .*osm/missing.osm.pbf"):
        resolve_paths(default_config, tmp_path)
    default_config["roads"]["osm"] = None
    resolved = resolve_paths(default_config, tmp_path)
    assert resolved["products"]["esa_worldcover"]["base_url"] == str(tmp_path / "mirror")
    assert resolved["products"]["fromglc10"]["base_url"] == "http://127.0.0.1:9/fromglc10"


def test_product_entries_are_validated(default_config):
    default_config["products"]["esa_worldcover"]["preset"] = "esa"
    default_config["products"]["Bad-Name"] = {"preset": "custom"}
    default_config["products"]["fromglc10"]["codes"] = {"10": ["cropland"]}
    with pytest.raises(ConfigError) as err:
        validate_config(default_config)
    message = str(err.value)
    assert "'products.esa_worldcover.preset'" in message
    assert "Bad-Name" in message
    assert "'products.fromglc10.codes.10[0]'" in message


def test_imagery_needs_files_or_a_tile_service_not_both(default_config, tmp_path):
    from l2h.core.config import check_rules

    default_config["imagery"]["xyz"] = {"url": "https://t.example/{z}/{x}/{y}.png", "zoom": 17}
    with pytest.raises(ConfigError, match="give exactly one of them"):
        check_rules(default_config)
    default_config["imagery"]["paths"] = []
    check_rules(default_config)
    default_config["imagery"]["xyz"] = None
    with pytest.raises(ConfigError, match="give exactly one of them"):
        check_rules(default_config)


def test_custom_only_keys_on_a_preset_are_rejected(default_config):
    from l2h.core.config import check_rules

    default_config["products"]["esa_worldcover"]["codes"] = {"10": ["tree"]}
    with pytest.raises(ConfigError, match=r"products.esa_worldcover.codes do not apply to the esa_worldcover preset"):
        check_rules(default_config)
    default_config["products"]["esa_worldcover"] = {"preset": "custom", "files": ["x.tif"], "codes": {"1": ["tree"]},
                                                    "edition": "v200"}
    with pytest.raises(ConfigError, match=r"products.esa_worldcover.edition do not apply to a custom product"):
        check_rules(default_config)


def test_evaluation_mapping_must_name_legend_classes(default_config):
    points = default_config["evaluation"]["points"]
    points["mapping"]["road"] = 12
    with pytest.raises(ConfigError, match=r"evaluation.points.mapping': \{'road': 12\} map to class\(es\) missing"):
        check_rules(default_config)


def test_pixel_mapping_must_name_its_legend_classes(default_config):
    points = default_config["evaluation"]["points"]
    default_config["evaluation"]["pixels"].update(legend=dict(points["legend"]), mapping={**points["mapping"], "road": 12})
    with pytest.raises(ConfigError, match=r"evaluation.pixels.mapping': \{'road': 12\} map to class\(es\) missing"):
        check_rules(default_config)
    default_config["evaluation"]["pixels"]["mapping"]["road"] = points["mapping"]["road"]
    check_rules(default_config)


def test_evaluation_is_optional(default_config):
    del default_config["evaluation"]
    validate_config(default_config)
    check_rules(default_config)


def test_evaluation_mapping_needs_all_our_classes(default_config):
    del default_config["evaluation"]["survey"]["mapping"]["moss"]
    with pytest.raises(ConfigError, match=r"config key 'evaluation.survey.mapping.moss' is required"):
        validate_config(default_config)


def test_train_settings_left_out_take_the_documented_defaults(default_config):
    import dataclasses

    from l2h.core.config import fill_defaults
    from l2h.model.train import TrainConfig

    # the schema's defaults are TrainConfig's and the default configuration's
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    assert fill_defaults({"train": {}})["train"] == defaults
    assert default_config["train"] == {**defaults, **default_config["train"]}
    partial = {**default_config, "train": {"steps": 7}}
    validate_config(partial)
    filled = fill_defaults(partial)
    assert filled["train"]["steps"] == 7 and filled["train"]["optimizer"] == defaults["optimizer"]
    assert partial["train"] == {"steps": 7}  # the input is not modified


def test_one_source_of_defaults():
    """workflow_config.yaml, the schema's defaults and TrainConfig say the same thing."""
    from dataclasses import fields

    from l2h.core.config import load_schema
    from l2h.model.train import TrainConfig

    documented = yaml.safe_load((ROOT / "workflow_config.yaml").read_text(encoding="utf-8"))
    schema = load_schema()["properties"]
    differ = [f"{section}.{key}: schema {prop['default']!r}, workflow_config.yaml {documented[section].get(key)!r}"
              for section, spec in schema.items() for key, prop in spec.get("properties", {}).items()
              if "default" in prop and documented.get(section, {}).get(key, prop["default"]) != prop["default"]]
    train_schema = schema["train"]["properties"]
    for field in fields(TrainConfig):
        if field.name in train_schema and train_schema[field.name].get("default") != field.default:
            differ.append(f"train.{field.name}: TrainConfig {field.default!r}, schema "
                          f"{train_schema[field.name].get('default')!r}")
        if field.name in documented["train"] and documented["train"][field.name] != field.default:
            differ.append(f"train.{field.name}: TrainConfig {field.default!r}, workflow_config.yaml "
                          f"{documented['train'][field.name]!r}")
    assert not differ, "\n".join(differ)


def test_a_config_without_train_or_infer_keys_gets_the_documented_ones(default_config):
    from l2h.core.config import fill_defaults

    documented = {section: dict(default_config[section]) for section in ("train", "infer")}
    default_config["train"] = {}
    default_config["infer"] = {k: v for k, v in default_config["infer"].items() if k in ("tile", "batch", "threads",
                                                                                         "device", "confidence", "strict")}
    validate_config(default_config)
    filled = fill_defaults(default_config)
    assert {section: {k: filled[section][k] for k in documented[section]} for section in documented} == documented


def test_numbers_written_as_text_are_coerced_but_not_nan_or_inf(default_config):
    """`--config train='{steps: 600}'` hands Snakemake's text over: a number key takes a number
    written as text, and nan or inf stay text, so the schema rejects them by name."""
    from l2h.core.config import coerce_scalars

    default_config["train"]["steps"], default_config["infer"]["label_prior"] = "600", "2.5"
    coerced = coerce_scalars(default_config)
    assert coerced["train"]["steps"] == 600 and coerced["infer"]["label_prior"] == 2.5
    for bad in ("nan", "inf", "-inf"):
        default_config["infer"]["label_prior"] = bad
        with pytest.raises(ConfigError, match="label_prior"):
            validate_config(coerce_scalars(default_config))


def test_imagery_takes_one_source_of_four(default_config):
    from l2h.core.config import check_rules, fill_defaults, validate_config

    imagery = default_config["imagery"]
    stac = {"url": "https://stac.example/api/v1", "collection": "naip", "asset": "image"}
    wmts = {"url": "https://wmts.example/caps.xml", "layer": "ortho"}
    imagery["stac"] = stac
    with pytest.raises(ConfigError, match=r"imagery.paths, imagery.xyz, imagery.stac, imagery.wmts: give exactly one "
                                          r".*got paths, stac"):
        check_rules(default_config)
    imagery["paths"] = []
    validate_config(default_config)
    check_rules(default_config)
    imagery["wmts"] = wmts
    with pytest.raises(ConfigError, match="got stac, wmts"):
        check_rules(default_config)
    imagery["stac"] = None
    check_rules(default_config)
    # a configuration written before STAC and WMTS (no such keys) still validates, with both null
    del imagery["stac"], imagery["wmts"]
    imagery["paths"] = ["a.tif"]
    assert {"stac": None, "wmts": None}.items() <= fill_defaults(default_config)["imagery"].items()
    imagery.update(stac={"url": "https://stac.example", "collection": "naip"}, wmts=None)  # no asset
    with pytest.raises(ConfigError, match="imagery.stac.*asset"):
        validate_config(default_config)


def test_stac_secrets_go_in_the_environment(default_config):
    from l2h.core.config import check_rules

    default_config["imagery"].update(paths=[], stac={"url": "https://stac.example/api", "asset": "image",
                                                     "asset_query": "se=2030&sig=AbCdEf123456"})
    with pytest.raises(ConfigError, match=r"imagery.stac.asset_query.*secret written out.*'sig'") as exc:
        check_rules(default_config)
    assert "AbCdEf123456" not in str(exc.value)
    default_config["imagery"]["stac"]["asset_query"] = "${NAIP_SAS}"
    check_rules(default_config)
    default_config["imagery"].update(stac=None, wmts={"url": "https://wmts.example/caps?tk=0123456789ab",
                                                      "layer": "img"})
    with pytest.raises(ConfigError, match=r"imagery.wmts.url.*'tk'"):
        check_rules(default_config)


def test_a_product_is_found_one_way(default_config):
    from l2h.core.config import check_rules, validate_config

    products = default_config["products"]
    products["esa_worldcover"]["stac"] = {"asset_query": "${WC_SAS}"}
    validate_config(default_config)
    with pytest.raises(ConfigError, match=r"products.esa_worldcover.base_url and 'products.esa_worldcover.stac': "
                                          r"give the files one way"):
        check_rules(default_config)
    products["esa_worldcover"]["base_url"] = None
    check_rules(default_config)
    products["mine"] = {"preset": "custom", "codes": {"1": ["tree"]}, "stac": {"url": "https://stac.example/api"}}
    with pytest.raises(ConfigError, match=r"products.mine.stac': a custom product's search needs url and asset"):
        check_rules(default_config)


def _merge(config: dict, overrides: dict) -> dict:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            _merge(config[key], value)
        else:
            config[key] = value
    return config


@pytest.mark.parametrize("text, key, word", [
    ("train: {lr: .nan}", "train.lr", ".nan"),  # minimum 0: the schema alone lets NaN through
    ("train: {lr: .inf}", "train.lr", ".inf"),  # and infinity, with no maximum
    ("infer: {label_prior: -.inf}", "infer.label_prior", "-.inf"),
    ("imagery: {stac: {url: 'https://stac.example', asset: image, filter: {'eo:cloud_cover': {lt: .NaN}}}}",
     "imagery.stac.filter.eo:cloud_cover.lt", ".nan"),
    ("products: {esa_worldcover: {nodata: [0, .Inf]}}", "products.esa_worldcover.nodata[1]", ".inf"),
    ("products: {esa_worldcover: {urls: ['https://a.example/x.tif', {url: 'https://a.example/y.tif', "
     "size: -.INF}]}}", "products.esa_worldcover.urls[1].size", "-.inf"),
], ids=["nan", "inf", "minus-inf", "nested-nan", "list-item-inf", "list-item-key-minus-inf"])
def test_nan_and_inf_are_refused_in_one_line_naming_the_key(default_config, text, key, word):
    """YAML reads .nan, .inf and -.inf as floats, which JSON Schema's number checks let through (NaN
    compares false with any bound): refused wherever they are, naming the key, in one line."""
    _merge(default_config, yaml.safe_load(text))
    with pytest.raises(ConfigError) as err:
        validate_config(default_config)
    assert str(err.value) == f"config key '{key}' is {word}; expected a finite number"


def test_every_non_finite_number_is_named_in_the_one_line(default_config):
    _merge(default_config, yaml.safe_load("train: {lr: .nan, momentum: .inf}\ninfer: {label_prior: 2.5}"))
    default_config["grid"]["pixel"] = 1  # a schema error too: the non-finite numbers come first, in one line
    with pytest.raises(ConfigError) as err:
        load_config(default_config, ROOT)
    assert str(err.value) == ("config key 'train.lr' is .nan; config key 'train.momentum' is .inf; "
                              "expected finite numbers")
