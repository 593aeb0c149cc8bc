"""foca: FoCa ("Forecast then Calibrate", feature caching as an ODE in the step index), variable-step form.

The features of the full steps are samples of a curve f(t) with slope f'. At a skipped step t, Δ = t - t_k
after the last full step t_k:
- forecast: f_k + Δ s_k, with s_k = f'(t_k) by the variable-step BDF2 formula through the last three full
  steps (two known: the secant; one: the cache);
- calibrate (Heun-type corrector): f_k + Δ/2 (s_k + s_t), with s_t the variable-step BDF2 slope at t through
  the last two full steps and the forecast.
Full steps are unevenly spaced (N = 16, B = 3: 0, 5, 11), so every weight uses the actual gaps. Both stages are
exact on features linear in the step index; on quadratic ones the corrector scales the forecast's error by
(1 + 2ω) / (2 (1 + ω)), ω = Δ / (t_k - t_{k-1}) (between 1/2 and 1). (A forecast by the quadratic through the
three full steps would make this corrector a no-op: it returns that quadratic exactly, which a test showed.)
`calibrate: false` keeps the forecast alone.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from ablate.methods.base import Knobs, Method


def bdf2_slope(ts: list[float], fs: list) -> object:
    """f'(ts[-1]) by variable-step BDF2 through the last three points (two: the secant; one: zero)."""
    if len(fs) == 1:
        return fs[-1] * 0
    if len(fs) == 2:
        return (fs[-1] - fs[-2]) / (ts[-1] - ts[-2])
    h1, h2 = ts[-1] - ts[-2], ts[-2] - ts[-3]
    w = h1 / h2
    return ((1 + 2 * w) / (1 + w) * fs[-1] - (1 + w) * fs[-2] + w * w / (1 + w) * fs[-3]) / h1


class FoCa(Method):
    name = "foca"
    label = "FoCa"
    color = "#17becf"
    marker = "v"
    rank = 3.3  # among the forecasters, after Taylor

    class Knobs(Knobs):
        calibrate: bool = Field(True, description="apply the Heun-type corrector after the BDF2 forecast")
        history: int = Field(3, ge=1, le=3, description="full steps behind the slope: 3, BDF2 (2 and 1 are refused: "
                                                       "they compute exactly Taylor order 1 and feature caching)")

        @field_validator("history")
        @classmethod
        def _not_another_method(cls, v):
            """A setting that is another method exactly would count twice in a tuning budget and a ranking."""
            if v == 2:
                raise ValueError("2 computes exactly Taylor order 1 (the secant; the corrector through three colinear "
                                 "points changes nothing): use method taylor with order 1")
            if v == 1:
                raise ValueError("1 computes exactly feature caching: use method feature_cache")
            return v

    def begin(self, model, batch_size):
        self.ts, self.fs = [], []

    def observe(self, state, logits, feature):
        self.ts = (self.ts + [float(state.step)])[-self.knobs.history:]
        self.fs = (self.fs + [feature])[-self.knobs.history:]

    def skip_step(self, model, state):
        feature = self.forecast(float(state.step))
        return model.head(feature), feature

    def forecast(self, t: float):
        if len(self.fs) < 2:
            return self.fs[-1]
        dt = t - self.ts[-1]
        slope_k = bdf2_slope(self.ts, self.fs)
        pred = self.fs[-1] + dt * slope_k
        if not self.knobs.calibrate:
            return pred
        slope_t = bdf2_slope(self.ts[-2:] + [t], self.fs[-2:] + [pred])
        return self.fs[-1] + dt / 2 * (slope_k + slope_t)
