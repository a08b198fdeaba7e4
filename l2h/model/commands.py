"""`l2h` subcommands of the model (rules/train.smk): training, ONNX export, model facts.

Each handler reads its arguments and calls the stage's functions (imported when it runs, so
that `l2h --help` stays fast); `register` adds the subcommands to the parser."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def _train(args: argparse.Namespace) -> None:
    import shutil

    from l2h.core.io import atomic_path
    from l2h.inputs.imagery import band_names
    from l2h.model.data import PriorSettings, load_training_specs, training_class_areas
    from l2h.model.train import TrainConfig, train

    imagery = json.loads(args.imagery)
    specs = load_training_specs(args.blocks, args.training_blocks, args.labels, imagery, crs=args.crs,
                                resolution=args.resolution, label_sets=args.label_sets)
    cfg = TrainConfig.from_dict(json.loads(args.settings))
    roads = tuple(sorted({args.roads.replace("{region}", s.region) for s in specs})) if args.roads else ()
    prior = PriorSettings(cfg.self_training_prior, args.prior_interpolation, roads)
    summary = train(specs, band_names(specs[0].imagery), cfg, args.out, Path(args.work_dir),
                    class_areas=training_class_areas(args.blocks, args.training_blocks), prior=prior)
    with atomic_path(args.metrics) as tmp:
        shutil.copyfile(Path(args.work_dir) / "metrics.csv", tmp)
    final = summary["metrics"]["final"]
    log.info("trained %d steps on %s in %.0f s (%.0f training pixels/s); last steps: loss %.3f, agreement with "
             "the coarse label %.1f %%, confident share %.1f %%", summary["steps"], summary["device"],
             summary["seconds"], summary["pixels_per_s"], final["total"], 100 * final["agreement"],
             100 * final["confident_share"])


def _export(args: argparse.Namespace) -> None:
    from l2h.model.export import export_onnx

    report = export_onnx(args.model, args.out, args.parity)
    log.info("ONNX model %s written; torch vs onnxruntime max abs diff %.2e (tolerance %.0e)", args.out,
             report["max_abs_diff"], report["tolerance"])


def _model_info(args: argparse.Namespace) -> None:
    from l2h.model.l2hnet import L2HNet, count_parameters, flops_per_pixel, load_model, receptive_field

    if args.model:
        model, meta = load_model(args.model)
        source = f"{args.model} (bands {', '.join(meta.get('bands', []))})"
    else:
        model, source = L2HNet(args.in_channels, 11, args.width), "untrained"
    info = {"width": model.width, "in_channels": model.in_channels, "num_classes": model.num_classes,
            "blocks": model.num_blocks, "parameters": count_parameters(model),
            "flops_per_pixel": flops_per_pixel(model), "receptive_field_px": receptive_field(model)}
    print(f"L2HNet, {source}")
    for key, value in info.items():
        print(f"  {key:<20} {value:,}" if isinstance(value, int) else f"  {key:<20} {value}")
    print(f"  {'GFLOP per km² at 1 m':<20} {info['flops_per_pixel'] * 1e6 / 1e9:,.1f}")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the model subcommands to the `l2h` parser."""
    p = sub.add_parser("train", help="train L2HNet on the training blocks (resumes from its checkpoint)",
                       description="Train L2HNet with the low-to-high loss on random windows of the training blocks "
                                   "(imagery at 1 m, the 10 m consensus label brought to 1 m); checkpoints every N "
                                   "steps; a rerun after a kill resumes from the last checkpoint.")
    p.add_argument("--blocks", required=True, help="block table (resources/blocks.csv)")
    p.add_argument("--training-blocks", required=True, help="selected blocks (resources/training_blocks.csv)")
    p.add_argument("--labels", required=True, help="label path template with {region}")
    p.add_argument("--label-sets", default=None, help="class-set label path template with {region} (for "
                                                       "train.partial_labels)")
    p.add_argument("--imagery", required=True, help="JSON object {region: imagery GDAL dataset name}")
    p.add_argument("--crs", required=True, help="the run's CRS")
    p.add_argument("--resolution", type=float, required=True, help="output pixel size in metres")
    p.add_argument("--settings", required=True, help="the config's `train` section as JSON")
    p.add_argument("--prior-interpolation", choices=["nearest", "bilinear"], default="bilinear",
                   help="the label prior of self-training's pseudo-labels at 1 m (as infer's)")
    p.add_argument("--roads", default=None,
                   help="road surfaces path template with {region} (from `l2h roads`): the pseudo-labels' prior "
                        "draws roads at 1 m")
    p.add_argument("--work-dir", required=True, help="folder for the checkpoint and per-step metrics")
    p.add_argument("--out", required=True, help="final model (.pt, with its metadata)")
    p.add_argument("--metrics", required=True, help="copy of the per-step metrics CSV")
    p.set_defaults(func=_train)

    p = sub.add_parser("export", help="export the model to ONNX and check parity with torch",
                       description="Export to ONNX (opset 17, dynamic batch/height/width, metadata), run torch and "
                                   "onnxruntime on the same random input and fail unless they agree (1e-4).")
    p.add_argument("--model", required=True, help="trained model (.pt)")
    p.add_argument("--out", required=True, help="ONNX file")
    p.add_argument("--parity", required=True, help="parity report JSON")
    p.set_defaults(func=_export)

    p = sub.add_parser("model-info", help="parameters, FLOPs per pixel and receptive field of L2HNet",
                       description="Print the size and cost of L2HNet: of a trained model (--model) or of an "
                                   "untrained one of the given width and band count.")
    p.add_argument("--model", default=None, help="trained model (.pt); otherwise --width/--in-channels")
    p.add_argument("--width", type=int, default=32, help="channels C of the backbone (untrained model)")
    p.add_argument("--in-channels", type=int, default=4, help="imagery bands (untrained model)")
    p.set_defaults(func=_model_info)
