"""Train a small BERT masked LM on a dataset's image tokens and save it as a transformers checkpoint.

The reference user model for the transformers adapter: `BertForMaskedLM` trained with the native
model's recipe (arccos masking ratio, label dropout for CFG, AdamW + warm-up + cosine), on the codes
the dataset's shipped VQ tokenizer gives its training split. Vocabulary: image tokens 0..K-1, [MASK]
= K, classes K+1..K+C, the null class K+C+1, an unused [PAD] K+C+2 (BERT keeps the padding row at
zero, so it must not be an image token). Dropout is off (short training; sampling runs in eval mode).

`python -m ablate train-mlm --dataset mnist --out ablate/weights/mnist-bert --threads 2` rebuilds the
shipped one bit-for-bit on the same torch version and thread count.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ablate.errors import AblateError
from ablate.hashing import file_digest
from ablate.models.hf_adapter import SIDECAR, TokenLayout
from ablate.models.train import adamw_warmup_cosine, random_mask
from ablate.progress import progress


@dataclass(frozen=True)
class MLMConfig:
    layers: int = 4
    hidden: int = 128
    heads: int = 4
    intermediate: int = 512
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.03
    warmup: int = 100
    label_drop: float = 0.1
    seed: int = 0


def apply_overrides(cfg: MLMConfig, items: list[str]) -> MLMConfig:
    """['layers=2', 'steps=300'] -> a new config; one-line errors name the bad setting."""
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    for item in items:
        if "=" not in item:
            raise AblateError(f"--set: expected field=value, got {item!r}")
        k, v = item.split("=", 1)
        if k not in fields:
            raise AblateError(f"--set: unknown setting {k!r} (settings: {', '.join(fields)})")
        kind = type(getattr(cfg, k))
        try:
            cfg = dataclasses.replace(cfg, **{k: kind(v)})
        except ValueError:
            raise AblateError(f"--set: {k} expects {kind.__name__}, got {v!r}") from None
    return cfg


def layout_for(codebook: int, seq_len: int, num_classes: int, dataset: str) -> TokenLayout:
    return TokenLayout(image_vocab_size=codebook, seq_len=seq_len, num_classes=num_classes, mask_token_id=codebook,
                       image_offset=0, class_offset=codebook + 1, null_class_token_id=codebook + 1 + num_classes,
                       dataset=dataset)


def training_codes(dataset: str, bundle=None) -> tuple[torch.Tensor, torch.Tensor, object]:
    """(codes (N, L), labels (N,), bundle): the tokenizer's codes of the dataset's training split."""
    from ablate import pretrained
    from ablate.data import load_dataset

    bundle = bundle or pretrained.load(dataset)
    man = bundle.manifest["config"]
    train, _ = load_dataset(dataset).split(man["held_out"], seed=man["seed"])
    x = train.as_float()
    with torch.no_grad():
        codes = torch.cat([bundle.tokenizer.encode(x[i : i + 500]) for i in range(0, len(x), 500)]).flatten(1)
    return codes, train.labels, bundle


def train_mlm(dataset: str, out: Path, cfg: MLMConfig = MLMConfig(), command: str = "", log=print) -> Path:
    """Train, save (save_pretrained, fp16 safetensors) + ablate.json + manifest.json into `out`; returns `out`."""
    from transformers import BertConfig, BertForMaskedLM

    from ablate.data import dataset_key

    codes, labels, bundle = training_codes(dataset)
    K, L, C = bundle.tokenizer.cfg.codebook_size, codes.shape[1], int(bundle.base.num_classes)
    layout = layout_for(K, L, C, dataset_key(dataset))
    if cfg.hidden % cfg.heads:
        raise AblateError(f"--set: hidden {cfg.hidden} must be a multiple of heads {cfg.heads}")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    bert_cfg = BertConfig(
        vocab_size=K + C + 3, hidden_size=cfg.hidden, num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads,
        intermediate_size=cfg.intermediate, max_position_embeddings=L + 1, type_vocab_size=1,
        pad_token_id=K + C + 2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    model = BertForMaskedLM(bert_cfg)
    class_ids = torch.tensor(layout.class_ids)
    opt, sched = adamw_warmup_cosine(model, cfg, no_decay_key="embeddings")
    model.train()
    t0 = time.perf_counter()
    losses = []
    bar = progress(range(cfg.steps), desc=f"{dataset}: BERT masked LM")
    for step in bar:
        idx = torch.randint(len(codes), (cfg.batch_size,), generator=gen)
        x, y = codes[idx], labels[idx]
        mask = random_mask(x, gen)
        drop = torch.rand(len(y), generator=gen) < cfg.label_drop
        cls = class_ids[torch.where(drop, torch.full_like(y, C), y)]
        ids = torch.cat([cls[:, None], x.masked_fill(mask, K)], dim=1)
        # image positions, image-token logits (as the adapter reads them)
        logits = model(input_ids=ids).logits[:, 1:, :K]
        loss = F.cross_entropy(logits[mask], x[mask])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    seconds = time.perf_counter() - t0
    model.eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(str(out), safe_serialization=True)  # fp16 on disk, as the native weights
    (out / SIDECAR).write_text(layout.to_json())
    k = max(1, len(losses) // 10)
    files = sorted(p.name for p in out.iterdir() if p.is_file() and p.name != "manifest.json")
    manifest = {
        "kind": "transformers BertForMaskedLM over image tokens (ablate.models.hf_adapter)",
        "dataset": dataset,
        "command": command or f"python -m ablate train-mlm --dataset {dataset} --out {out}",
        "note": "bit-for-bit on the same torch version and thread count (float reductions depend on both)",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "config": asdict(cfg),
        "layout": json.loads(layout.to_json()),
        "params": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(seconds, 1),
        "loss_first": sum(losses[:k]) / k,
        "loss_last": sum(losses[-k:]) / k,
        "files": {n: {"sha256": file_digest(out / n, "sha256"), "bytes": (out / n).stat().st_size} for n in files},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log(f"{dataset}: wrote {out} ({manifest['params']} params, {seconds:.0f} s, loss {manifest['loss_last']:.3f})")
    return out
