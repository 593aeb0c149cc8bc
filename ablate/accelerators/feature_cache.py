"""feature_cache: at a skipped step, reuse the feature of the last full step (the simplest baseline)."""

from __future__ import annotations

from ablate.accelerators.base import Accelerator


class FeatureCache(Accelerator):
    name = "feature_cache"

    def begin(self, model, batch_size):
        self.feature = None

    def observe(self, state, logits, feature):
        self.feature, self.logits = feature, logits

    def skip_step(self, model, state):
        return self.logits, self.feature
