"""The MaskGIT sampler: it owns the loop; methods plug into each step through `StepPolicy` (policy.py)."""

from ablate.sampling.policy import StepOutput, StepPolicy, StepState, confidence_top_k
from ablate.sampling.sampler import MaskGITSampler, SampleOutput, SamplerConfig
from ablate.sampling.schedule import full_steps, mask_schedule

__all__ = [
    "MaskGITSampler",
    "SampleOutput",
    "SamplerConfig",
    "StepOutput",
    "StepPolicy",
    "StepState",
    "confidence_top_k",
    "full_steps",
    "mask_schedule",
]
