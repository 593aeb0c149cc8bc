"""feature_cache: at a skipped step, reuse the feature of the last full step (the simplest baseline)."""

from __future__ import annotations

from ablate.methods.base import Method


class FeatureCache(Method):
    name = "feature_cache"
    label = "Feature caching"
    color = "#1f77b4"
    marker = "s"
    rank = 2

    def begin(self, model, batch_size):
        self.feature = None

    def observe(self, state, logits, feature):
        self.feature, self.logits = feature, logits

    def skip_step(self, model, state):
        return self.logits, self.feature
