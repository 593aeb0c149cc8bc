"""migm-ablate: accelerate masked image generators and measure what each design choice buys.

The flow (docs/architecture.md): data -> tokenizer -> base model -> sampler (+ method) -> measures.
"""

__version__ = "0.1.0"
