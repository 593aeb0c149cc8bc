"""Names, colours, markers and measure directions shared by figures and tables, so both read alike."""

from __future__ import annotations

import pandas as pd

from ablate.metrics.measures import MEASURES, mode  # noqa: F401  (one table of measures for the whole project)

# Only for runs logged before trials described themselves (no colour or marker tag): a fixed palette.
FALLBACK_COLORS = ["#8c564b", "#e377c2", "#bcbd22", "#17becf", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"]
FALLBACK_MARKERS = ["X", "h", "<", ">", "s", "^", "D", "P"]


def axis_label(measure: str) -> str:
    m = MEASURES.get(measure)
    name, unit, better = (m.label, m.unit, m.better) if m else (measure, "", "min")
    arrow = "↓ lower is better" if better == "min" else "↑ higher is better"
    return f"{name}{f' ({unit})' if unit else ''}, {arrow}"


def measure_name(measure: str) -> str:
    return MEASURES[measure].label if measure in MEASURES else measure


def _fallback(method: str, options: list) -> str:
    return options[sum(map(ord, str(method))) % len(options)]


def clean(v):
    """Knob values come back as floats where a column has gaps (1.0 for n_block 1): print them as ints."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def knob_text(knob: str, v) -> str:
    """A knob's setting, named as everywhere else: `n_block=2`, `use_tokens=false`."""
    v = clean(v)
    return f"{knob}={str(v).lower() if isinstance(v, bool) else v}"


SAMPLER = ("cfg_w", "r_temp", "sm_temp", "unmasking")  # sampler settings tell variants apart too where a study varies them


def knob_columns(df: pd.DataFrame) -> dict[str, list[str]]:
    """method -> its knobs (and sampler settings) that take more than one value in `df` (what tells its variants
    apart)."""
    out = {}
    for method, g in df.groupby("method"):
        cols = [c for c in sorted(df.attrs.get("knobs", [])) + list(SAMPLER) if c in g]
        out[method] = [c for c in cols if g[c].notna().any() and g[c].astype(str).nunique() > 1]
    return out


def add_labels(df: pd.DataFrame) -> pd.DataFrame:
    """Adds `variant` (method + knobs that vary), `label` (readable) and `series` (label + source if several)."""
    df = df.copy()
    varying = knob_columns(df)
    several = df["source"].nunique() > 1

    def one(r):
        knobs = varying.get(r["method"], [])
        variant = r["method"] + "".join(f"|{k}={clean(r[k])}" for k in knobs)
        label = r["label"] if isinstance(r.get("label"), str) and r["label"] else r["method"]
        if knobs:
            label += " (" + ", ".join(knob_text(k, r[k]) for k in knobs) + ")"
        return pd.Series({"variant": variant, "label": label,
                          "series": f"{label} [{r['source']}]" if several else label})

    if len(df):
        df[["variant", "label", "series"]] = df.apply(one, axis=1)
    df["method_rank"] = df["rank"] if "rank" in df else 100.0
    if "marker" not in df:
        df["marker"] = None
    df["marker"] = [m if isinstance(m, str) and m else _fallback(meth, FALLBACK_MARKERS)
                    for m, meth in zip(df["marker"], df["method"])]
    df["color"] = df["variant"].map(_variant_colors(df)) if len(df) else []
    return df


def _variant_colors(df: pd.DataFrame) -> dict[str, str]:
    """One colour per variant, the same in every figure: the method's colour for its most-run variant,
    darker and lighter shades of it for the others."""
    out = {}
    for method, g in df.groupby("method"):
        counts = g["variant"].value_counts()
        ranked = sorted(counts.index, key=lambda v: (-counts[v], v))
        logged = g["color"].dropna() if "color" in g else []
        base = logged.iloc[0] if len(logged) else _fallback(method, FALLBACK_COLORS)
        for i, v in enumerate(ranked):
            out[v] = shade(base, i)
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
