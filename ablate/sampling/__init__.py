"""The MaskGIT sampler: it owns the loop; methods plug into each step."""

from ablate.sampling.sampler import MaskGITSampler, SampleOutput, SamplerConfig, StepOutput, StepState
from ablate.sampling.schedule import full_steps, mask_schedule

__all__ = [
    "MaskGITSampler",
    "SampleOutput",
    "SamplerConfig",
    "StepOutput",
    "StepState",
    "full_steps",
    "mask_schedule",
]
