"""Every measure a trial logs, once: its name (the MLflow metric and table key), label, unit, which direction
is better, printed digits and short table header. Search-space objectives, figures and tables read this.

Plain Python (no torch), so the report can import it on a machine that has only the MLflow store.
"""

from __future__ import annotations

from typing import NamedTuple


class Measure(NamedTuple):
    label: str
    unit: str
    better: str  # "min" or "max"
    digits: int
    short: str


MEASURES: dict[str, Measure] = {
    "fid": Measure("FID", "", "min", 2, "FID"),
    "kid_mean": Measure("KID", "", "min", 2, "KID"),
    "kid_std": Measure("KID std", "", "min", 3, "KID std"),
    "precision": Measure("Precision", "", "max", 3, "Prec."),
    "recall": Measure("Recall", "", "max", 3, "Rec."),
    "class_acc": Measure("Class acc.", "", "max", 3, "Acc."),
    "latency_ms_per_image": Measure("Latency", "ms/image", "min", 1, "ms/img"),
    "images_per_s": Measure("Throughput", "images/s", "max", 1, "img/s"),
    "gflops_per_image": Measure("GFLOPs", "per image", "min", 3, "GFLOPs"),
    "speedup_wall": Measure("Speedup (wall clock)", "×", "max", 2, "× wall"),
    "speedup_flops": Measure("Speedup (FLOPs)", "×", "max", 2, "× FLOPs"),
    "ideal_speedup": Measure("Ideal speedup", "×", "max", 2, "× ideal"),
    "feature_mse": Measure("Feature MSE", "", "min", 4, "feat. MSE"),
    "feature_cos": Measure("Feature cosine", "", "max", 3, "feat. cos"),
    "token_agreement": Measure("Token agreement with vanilla", "", "max", 3, "tok. agr."),
    "psnr": Measure("PSNR to vanilla", "dB", "max", 2, "PSNR"),
    "ssim": Measure("SSIM to vanilla", "", "max", 3, "SSIM"),
    "paired_feature_dist": Measure("Paired feature distance to vanilla", "", "min", 3, "pair dist."),
    "fid_n250": Measure("FID (first 250 samples)", "", "min", 2, "FID@250"),
    "fid_n500": Measure("FID (first 500 samples)", "", "min", 2, "FID@500"),
    "fid_n1000": Measure("FID (first 1,000 samples)", "", "min", 2, "FID@1k"),
    "fid_train": Measure("FID against the training split", "", "min", 2, "FID train"),
    "fid_held_out": Measure("FID against the held-out split", "", "min", 2, "FID held-out"),
    "floor_fid": Measure("FID of real images (floor)", "", "min", 2, "floor FID"),
    "sample_seconds_n250": Measure("Sampling time of the first 250 samples", "s", "min", 1, "s@250"),
    "sample_seconds_n500": Measure("Sampling time of the first 500 samples", "s", "min", 1, "s@500"),
    "sample_seconds_n1000": Measure("Sampling time of the first 1,000 samples", "s", "min", 1, "s@1k"),
    "sampled_images": Measure("Images sampled by this run", "", "min", 0, "sampled"),
    "full_steps_mean": Measure("Full steps taken (mean)", "", "min", 2, "full steps"),
    "steps_mean": Measure("Steps taken (mean)", "", "min", 2, "steps"),
    "params": Measure("Params", "", "min", 0, "params"),
    "shortcut_params": Measure("Shortcut params", "", "min", 0, "params"),
    "train_seconds": Measure("Train time", "s", "min", 0, "train s"),
}


def mode(measure: str) -> str:
    return MEASURES[measure].better if measure in MEASURES else "min"
