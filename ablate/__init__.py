"""migm-ablate: accelerate masked image generators and measure what each design choice buys.

The flow (see DESIGN.md): data -> tokenizer -> base model -> sampler (+ accelerator) -> measures.
"""

__version__ = "0.1.0"
