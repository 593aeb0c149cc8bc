"""Which base model a run samples with: the dataset's native MaskGIT, or a transformers checkpoint.

A base spec is a string: `native` (or nothing) = the dataset's trained MaskGIT (ablate/weights or
`prepare`); `hf:PATH` = a local transformers masked LM (see hf_adapter.py), PATH a folder or a name
under $ABLATE_HOME/weights/ or ablate/weights/ (e.g. `hf:mnist-bert`, shipped). The dataset's
tokenizer and classifier still decode and score the samples, so the checkpoint must speak the
tokenizer's codes: same codebook size, token grid and classes.
"""

from __future__ import annotations

from typing import Optional

import torch

from ablate.errors import AblateError


def check_base(spec: Optional[str]) -> Optional[str]:
    """Normalise a base spec (None for native; 'hf:/absolute/folder') with cheap checks; one-line errors."""
    if spec is None or spec == "" or spec == "native":
        return None
    if not isinstance(spec, str) or not spec.startswith("hf:") or len(spec) == 3:
        raise AblateError(
            f"base: unknown base {spec!r}; use native or hf:PATH (a local transformers checkpoint folder)"
        )
    from ablate.models.hf_adapter import resolve_folder

    return f"hf:{resolve_folder(spec[3:])}"


def is_native(spec: Optional[str]) -> bool:
    return check_base(spec) is None


def load_base(spec: Optional[str], bundle, device: Optional[torch.device] = None):
    """The base model of `spec` on `device`, checked against the bundle's tokenizer (codes, grid, classes)."""
    spec = check_base(spec)
    if spec is None:
        base = bundle.base
    else:
        from ablate.data import dataset_key
        from ablate.models import hf_adapter

        base = hf_adapter.load(spec[3:])
        want = {"image_vocab_size": bundle.tokenizer.cfg.codebook_size, "seq_len": bundle.base.seq_len,
                "num_classes": bundle.base.num_classes}
        got = {"image_vocab_size": base.vocab_size, "seq_len": base.seq_len, "num_classes": base.num_classes}
        for k in want:
            if want[k] != got[k]:
                raise AblateError(f"base: {spec[3:]} has {k} {got[k]}, but dataset {bundle.dataset}'s tokenizer and "
                                  f"classifier need {want[k]}")
        trained_on = base.layout.dataset
        if trained_on is not None and trained_on != dataset_key(bundle.dataset):
            raise AblateError(
                f"base: {spec[3:]} was trained on the tokens of dataset {trained_on}, not {bundle.dataset}"
            )
    if device is not None:
        base = base.to(device)
    return base
