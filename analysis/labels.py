"""Names, colours, markers and measure directions shared by figures and tables, so both read alike."""

from __future__ import annotations

import pandas as pd

METHOD_NAMES = {
    "vanilla": "Vanilla", "step_reduction": "Step reduction", "feature_cache": "Feature caching",
    "taylor": "Taylor", "ml_cache": "ML-Cache", "recap": "ReCAP", "shortcut": "MIGM-Shortcut",
}
METHOD_ORDER = list(METHOD_NAMES)
COLORS = {
    "vanilla": "#000000", "step_reduction": "#7f7f7f", "feature_cache": "#1f77b4", "taylor": "#ff7f0e",
    "ml_cache": "#2ca02c", "recap": "#9467bd", "shortcut": "#d62728",
}
MARKERS = {"vanilla": "*", "step_reduction": "v", "feature_cache": "s", "taylor": "^", "ml_cache": "D",
           "recap": "P", "shortcut": "o"}
EXTRA_COLORS = ["#8c564b", "#e377c2", "#bcbd22", "#17becf"]
EXTRA_MARKERS = ["X", "h", "<", ">"]

# Measure -> (short label, unit, better). Directions decide "best" in tables and Pareto modes.
MEASURES = {
    "fid": ("FID", "", "min"), "kid_mean": ("KID", "", "min"), "precision": ("Precision", "", "max"),
    "recall": ("Recall", "", "max"), "class_acc": ("Class acc.", "", "max"),
    "latency_ms_per_image": ("Latency", "ms/image", "min"), "images_per_s": ("Throughput", "images/s", "max"),
    "gflops_per_image": ("GFLOPs", "per image", "min"), "speedup_wall": ("Speedup (wall clock)", "×", "max"),
    "speedup_flops": ("Speedup (FLOPs)", "×", "max"), "ideal_speedup": ("Ideal speedup", "×", "max"),
    "feature_mse": ("Feature MSE", "", "min"), "feature_cos": ("Feature cosine", "", "max"),
    "params": ("Params", "", "min"), "shortcut_params": ("Shortcut params", "", "min"),
    "train_seconds": ("Train time", "s", "min"),
}
KNOB_ORDER = ["n_block", "use_tokens", "bottleneck", "time_embed", "order", "warmup_ratio", "refresh_interval",
              "cache_ratio", "margin", "train_steps", "rollout", "kl_weight", "traj_images", "traj_steps"]


def mode(measure: str) -> str:
    return MEASURES.get(measure, (measure, "", "min"))[2]


def axis_label(measure: str) -> str:
    name, unit, better = MEASURES.get(measure, (measure, "", "min"))
    arrow = "↓ lower is better" if better == "min" else "↑ higher is better"
    return f"{name}{f' ({unit})' if unit else ''}, {arrow}"


def color(method: str) -> str:
    return COLORS.get(method) or EXTRA_COLORS[sum(map(ord, method)) % len(EXTRA_COLORS)]


def marker(method: str) -> str:
    return MARKERS.get(method) or EXTRA_MARKERS[sum(map(ord, method)) % len(EXTRA_MARKERS)]


def clean(v):
    """Knob values come back as floats where a column has gaps (1.0 for n_block 1): print them as ints."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def knob_text(knob: str, v) -> str:
    v = clean(v)
    if knob == "n_block":
        return f"{v} block{'s' if v != 1 else ''}"
    if knob == "use_tokens":
        return "tokens" if v else "no tokens"
    if knob == "bottleneck":
        return f"r={v}"
    if knob == "time_embed":
        return "time emb." if v else "no time emb."
    if knob == "order":
        return f"order {v}"
    if knob == "kl_weight":
        return f"KL {v}" if v else "MSE only"
    return f"{knob}={v}"


def knob_columns(df: pd.DataFrame) -> dict[str, list[str]]:
    """method -> its knobs that take more than one value in `df` (what tells its variants apart)."""
    out = {}
    for method, g in df.groupby("method"):
        cols = [c for c in KNOB_ORDER + sorted(set(df.columns) - set(KNOB_ORDER)) if c in g and c in _knob_like(df)]
        out[method] = [c for c in cols if g[c].notna().any() and g[c].astype(str).nunique() > 1]
    return out


def _knob_like(df: pd.DataFrame) -> set:
    return set(df.attrs.get("knobs", [])) | (set(KNOB_ORDER) & set(df.columns))


def add_labels(df: pd.DataFrame) -> pd.DataFrame:
    """Adds `variant` (method + knobs that vary), `label` (readable) and `series` (label + source if several)."""
    df = df.copy()
    varying = knob_columns(df)
    several = df["source"].nunique() > 1

    def one(r):
        knobs = varying.get(r["method"], [])
        variant = r["method"] + "".join(f"|{k}={clean(r[k])}" for k in knobs)
        label = METHOD_NAMES.get(r["method"], r["method"])
        if knobs:
            label += " (" + ", ".join(knob_text(k, r[k]) for k in knobs) + ")"
        return pd.Series({"variant": variant, "label": label,
                          "series": f"{label} [{r['source']}]" if several else label})

    if len(df):
        df[["variant", "label", "series"]] = df.apply(one, axis=1)
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    df["method_rank"] = df["method"].map(lambda m: order.get(m, len(order)))
    df["color"] = df["variant"].map(_variant_colors(df)) if len(df) else []
    return df


def _variant_colors(df: pd.DataFrame) -> dict[str, str]:
    """One colour per variant, the same in every figure: the method's colour for its most-run variant,
    darker and lighter shades of it for the others."""
    out = {}
    for method, g in df.groupby("method"):
        counts = g["variant"].value_counts()
        ranked = sorted(counts.index, key=lambda v: (-counts[v], v))
        for i, v in enumerate(ranked):
            out[v] = shade(color(method), i)
    return out


def shade(hex_color: str, i: int) -> str:
    if i == 0:
        return hex_color
    import numpy as np
    from matplotlib.colors import to_hex, to_rgb

    rgb = np.array(to_rgb(hex_color))
    f = [0.6, 1.45, 0.35, 1.7, 0.8, 1.25][(i - 1) % 6]
    rgb = rgb * f if f < 1 else rgb + (1 - rgb) * (f - 1)
    return to_hex(np.clip(rgb, 0, 1))
