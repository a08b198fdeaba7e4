"""The fast, in-memory harness the 1 m detail work was tuned with -- on a *tuning* demo world (seed 7),
never on the worlds whose numbers the docs report (seed 42, bench/cv.py).

It is not the workflow: it holds a world (imagery, 1 m truth, the workflow's 10 m consensus labels,
class sets, roads and training blocks of a finished `snakemake ... resources/training_blocks.csv`) in
memory, trains L2HNet with a plain loop on windows sliced from the training blocks (a few ms per
step of data instead of raster reads), and scores the network alone and the map under several
label priors at every held-out pixel (or, during training, on every other 512 px tile) with the
workflow's own detail measures (l2h.evaluation.detail). Each setting it favoured was then run
through the workflow (bench/cv.py on the same tuning world, then on the reporting world with three
seeds); its rows are the "tuning" table of docs/accuracy.md ("1 m detail").

Usage (after `l2h demo-world W --seed 7` and the workflow up to resources/training_blocks.csv in D):
  python bench/detail_lab.py --world W --work D --name NAME [--patch 32 --batch 128 --steps 500
      --lr 0.01 --edge cell|pixel|ignore --balance 0.25 --self-train 200 --seed 0] [--out JSON]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
import torch.nn.functional as F
from rasterio.features import geometry_mask

from l2h.evaluation.detail import DetailCounts, cell_majority
from l2h.evaluation.metrics import confusion_matrix, scores
from l2h.maps.label_prior import LabelPrior
from l2h.model.l2hnet import L2HNet
from l2h.model.loss import cell_nll

K, CELL, ROAD = 11, 10, 10  # classes; the label's cell in pixels; the road's class index


class World:
    """A demo world and the workflow's labels for it, on the 1 m grid, in memory."""

    def __init__(self, world: Path, work: Path):
        import geopandas as gpd

        self.imagery = world / "imagery" / "demo_imagery.tif"
        with rasterio.open(world / "truth" / "truth_1m.tif") as src:
            self.ref = src.read(1).astype(np.int64) - 1  # codes 1..11 -> 0..10, nodata -> -1
            self.transform, self.crs = src.transform, src.crs
        self.shape = self.ref.shape
        regions = sorted((work / "resources" / "regions").glob("*.gpkg"))
        self.region = np.full(self.shape, -1, np.int64)
        for i, path in enumerate(regions):
            geoms = list(gpd.read_file(path).to_crs(self.crs).geometry)
            self.region[~geometry_mask(geoms, out_shape=self.shape, transform=self.transform)] = i
        self.label = self._labels(work, [p.stem for p in regions], "")
        self.set_paths = [str(work / "resources" / "labels" / f"{p.stem}_sets.tif") for p in regions]
        self.road_paths = [str(work / "resources" / "roads" / f"{p.stem}.gpkg") for p in regions]
        self.offset = (round((-self.transform.f) % CELL), round(self.transform.c % CELL))  # cells at CRS multiples
        self.majority, self.mixed = cell_majority(self.ref, CELL, self.offset)
        self.training = self._training_mask(work)

    def _labels(self, work: Path, regions: list[str], kind: str) -> np.ndarray:
        out = np.zeros(self.shape, np.int64)
        xs = self.transform.c + np.arange(self.shape[1]) + 0.5
        ys = self.transform.f - np.arange(self.shape[0]) - 0.5
        for region in regions:
            with rasterio.open(work / "resources" / "labels" / f"{region}{kind}.tif") as src:
                data, t = src.read(1).astype(np.int64), src.transform
            cols, rows = np.floor((xs - t.c) / t.a).astype(int), np.floor((ys - t.f) / t.e).astype(int)
            part = data[np.clip(rows, 0, data.shape[0] - 1)[:, None], np.clip(cols, 0, data.shape[1] - 1)[None, :]]
            part[(rows < 0) | (rows >= data.shape[0])] = 0
            part[:, (cols < 0) | (cols >= data.shape[1])] = 0
            np.copyto(out, part, where=part > 0)
        return out

    def _training_mask(self, work: Path) -> np.ndarray:
        blocks = {r["block_id"]: r for r in csv.DictReader(open(work / "resources" / "blocks.csv"))}
        mask = np.zeros(self.shape, bool)
        for row in csv.DictReader(open(work / "resources" / "training_blocks.csv")):
            b = blocks[row["block_id"]]
            c0, c1 = (round(float(b[k]) - self.transform.c) for k in ("xmin", "xmax"))
            r0, r1 = (round(self.transform.f - float(b[k])) for k in ("ymax", "ymin"))
            mask[max(r0, 0):max(r1, 0), max(c0, 0):max(c1, 0)] = True
        return mask

    @property
    def label_classes(self) -> np.ndarray:
        return np.where((self.label >= 1) & (self.label <= K), self.label - 1, -1)

    @property
    def held_out(self) -> np.ndarray:
        return (self.ref >= 0) & (self.region >= 0) & ~self.training

    def prior(self, interpolation: str = "bilinear", roads: bool = True) -> np.ndarray:
        """(K, H, W) class membership of the coarse sets at 1 m: the workflow's LabelPrior at 1 nat."""
        with LabelPrior(self.set_paths, 1.0, K, interpolation, self.road_paths if roads else ()) as prior:
            members = prior.bonus(self.transform, self.shape)
        return np.zeros((K, *self.shape), np.float32) if members is None else members


def score(world: World, pred: np.ndarray, scored: np.ndarray) -> dict:
    """OA, building and road IoU, boundary F1 (2 px), sub-cell and mixed-cell OA of class indices."""
    ok = scored & (pred >= 0)
    s = scores(confusion_matrix(world.ref[ok], pred[ok], K))
    detail = DetailCounts()
    detail.add(world.ref, np.where(world.region >= 0, pred, -1), ok, 2.0, world.majority, world.mixed)
    d = detail.summary()
    return {"oa": round(float(s["oa"]), 4), "building_iou": round(float(s["iou"][4]), 4),
            "road_iou": round(float(s["iou"][ROAD]), 4), "boundary_f1": d["boundary_f1"],
            "subcell_oa": d["subcell_oa"], "mixed_cell_oa": d["mixed_cell_oa"]}


def logits_of(model: L2HNet, x: np.ndarray, tile: int = 512, halo: int = 16) -> np.ndarray:
    model.eval()
    h, w = x.shape[1:]
    out = np.zeros((K, h, w), np.float32)
    pad = np.pad(x, ((0, 0), (halo, halo + tile), (halo, halo + tile)))
    with torch.no_grad():
        for r in range(0, h, tile):
            for c in range(0, w, tile):
                y = model(torch.from_numpy(np.ascontiguousarray(pad[:, r:r + tile + 2 * halo,
                                                                     c:c + tile + 2 * halo]))[None])[0].numpy()
                out[:, r:r + tile, c:c + tile] = y[:, halo:halo + min(tile, h - r), halo:halo + min(tile, w - c)]
    return out


def edge_cells(label: np.ndarray) -> np.ndarray:
    """Pixels of 10 m cells whose label differs from a neighbouring cell's (the workflow's edge cells)."""
    edge = np.zeros(label.shape, bool)
    for dy in (-CELL, 0, CELL):
        for dx in (-CELL, 0, CELL):
            other = np.roll(np.roll(label, dy, 0), dx, 1)
            edge |= (other != label) & (other >= 0) & (label >= 0)
    return edge


def train(world: World, x: np.ndarray, args, log) -> L2HNet:
    """The plain loop: windows sliced in memory; the coarse label's CE (class weights ** -balance)
    with edge cells as cells, pixels or left out; then optional self-training on the map of a frozen
    copy plus the bilinear prior with roads."""
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    label = world.label_classes
    valid = x.any(0)
    target = np.where(world.training & valid & (label >= 0), label, 255)
    edge = edge_cells(np.where(label >= 0, label, -1))
    h, w = world.shape
    cell_id = ((np.arange(h)[:, None] + world.offset[0]) // CELL) * 100_000 + (np.arange(w)[None] + world.offset[1]) // CELL
    rows, cols = np.nonzero(world.training)
    model = L2HNet(x.shape[0], K, args.width)
    phases = [("coarse", args.steps, args.lr)] + ([("self", args.self_train, args.self_lr)] if args.self_train else [])
    for phase, steps, lr in phases:
        if phase == "self":
            pseudo = (logits_of(model, x) + args.self_prior * world.prior()).argmax(0)
            target, edge = np.where(world.training & valid, pseudo, 255), np.zeros_like(edge)
        optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s, n=steps: max(0.0, 1 - s / n) ** 0.9)
        for step in range(steps):
            batch = [_window(rng, rows, cols, target, x, edge, cell_id, args.patch, k) for k in range(args.batch)]
            image, y, e, c = (torch.from_numpy(np.stack(a)) for a in zip(*batch))
            model.train()
            loss = _loss(model(image), y.long(), e, c.long(), args)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
        log(f"{phase} phase: {steps} steps")
    return model


def _window(rng, rows, cols, target, x, edge, cell_id, p, k):
    h, w = target.shape
    for _ in range(8):  # a window a third labelled at least
        i = rng.integers(len(rows))
        r = int(np.clip(rows[i] - rng.integers(p), 0, h - p))
        c = int(np.clip(cols[i] - rng.integers(p), 0, w - p))
        if (target[r:r + p, c:c + p] != 255).mean() > 0.3:
            break
    turn, flip = rng.integers(4), rng.integers(2)
    parts = [x[:, r:r + p, c:c + p], target[r:r + p, c:c + p], edge[r:r + p, c:c + p],
             cell_id[r:r + p, c:c + p] + k * 10**9]
    parts = [np.rot90(a, turn, axes=(-2, -1)) for a in parts]
    return [np.ascontiguousarray(a[..., ::-1] if flip else a) for a in parts]


def _loss(logits, y, edge, cells, args):
    labelled = y != 255
    counts = torch.bincount(y[labelled], minlength=K).float()
    weights = torch.where(counts > 0, counts.clamp(min=1) ** -args.balance, torch.zeros_like(counts))
    weights = weights / weights[counts > 0].mean()
    if args.edge == "pixel":
        return F.cross_entropy(logits, y, weight=weights, ignore_index=255)
    inner = torch.where(edge, torch.full_like(y, 255), y)
    loss = F.cross_entropy(logits, inner, weight=weights, ignore_index=255)
    mask = edge & labelled
    if args.edge == "cell" and mask.any():
        nll, cls, pixels = cell_nll(logits.softmax(1), y, cells, mask)
        cell_w = weights[cls] * pixels
        share = mask.float().mean() / labelled.float().mean()
        loss = loss * (1 - share) + (cell_w * nll).sum() / cell_w.sum() * share
    return loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--patch", type=int, default=32)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--edge", choices=["cell", "pixel", "ignore"], default="cell")
    ap.add_argument("--balance", type=float, default=0.25)
    ap.add_argument("--self-train", type=int, default=200)
    ap.add_argument("--self-lr", type=float, default=0.003)
    ap.add_argument("--self-prior", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="append the result (JSON lines)")
    args = ap.parse_args()
    started = time.perf_counter()
    world = World(args.world, args.work)
    with rasterio.open(world.imagery) as src:
        image = src.read().astype(np.float32)
    valid = image.any(0)
    sel = world.training & valid
    mean = np.array([b[sel].mean() for b in image], np.float32)
    std = np.array([b[sel].std() for b in image], np.float32)
    x = (image - mean[:, None, None]) / std[:, None, None]
    x[:, ~valid] = 0
    model = train(world, x, args, print)
    seconds = time.perf_counter() - started
    logits = logits_of(model, x)
    held = world.held_out
    labelled = world.label_classes >= 0
    row = {"name": args.name, "settings": {k: v for k, v in vars(args).items() if k not in ("world", "work", "out")},
           "seconds": round(seconds, 1), "network": score(world, logits.argmax(0), held),
           "network_where_labelled": score(world, np.where(labelled, logits.argmax(0), -1), held),
           "label_where_labelled": score(world, world.label_classes, held)}
    for name, prior in (("nearest", world.prior("nearest", roads=False)), ("bilinear_roads", world.prior())):
        for b in (4.0, 6.0, 10.0):
            row[f"map_{name}_{b:g}"] = score(world, (logits + b * prior).argmax(0), held)
    print(json.dumps(row))
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
