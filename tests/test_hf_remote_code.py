"""The transformers adapter with a `trust_remote_code` model (the way LLaDA / Lumina-DiMOO checkpoints ship
their own modeling code): a tiny bidirectional encoder whose configuration and modeling files live in the
checkpoint folder, with no absolute position table (the shortcut then embeds positions with the adapter's
sinusoidal fallback, as for a rotary model). Everything is written under tmp_path; nothing is fetched."""

import json
import shutil
import sys
import textwrap

import pytest
import torch

from ablate import methods
from ablate.errors import AblateError
from ablate.models import hf_adapter
from ablate.models.protocol import token_table
from ablate.sampling import MaskGITSampler, SamplerConfig
from ablate.shortcut.model import Shortcut, ShortcutConfig

LABELS = torch.tensor([0, 1, 2, 3])
STEPS = 6
# the native MNIST token layout (as ablate/weights/mnist-bert/ablate.json): image ids 0..127, mask 128,
# classes 129..138, the CFG null class 139
LAYOUT = {"image_vocab_size": 128, "seq_len": 49, "num_classes": 10, "mask_token_id": 128, "image_offset": 0,
          "class_offset": 129, "null_class_token_id": 139, "dataset": "mnist", "trust_remote_code": True}
VOCAB = 140

CONFIGURATION = '''
from transformers import PretrainedConfig


class TinyMLMConfig(PretrainedConfig):
    model_type = "tiny-mlm"

    def __init__(self, vocab_size=140, hidden_size=32, n_layers=2, n_heads=2, max_len=64, **kwargs):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.max_len = max_len
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)
'''

MODELING = '''
import torch.nn as nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

from .configuration_tiny import TinyMLMConfig


class TinyMLM(PreTrainedModel):
    """Token embedding, bidirectional encoder blocks, final norm, LM head; no absolute positions."""

    config_class = TinyMLMConfig

    def __init__(self, config):
        super().__init__(config)
        d = config.hidden_size
        self.embed_tokens = nn.Embedding(config.vocab_size, d)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d, config.n_heads, dim_feedforward=2 * d, dropout=0.0, batch_first=True)
            for _ in range(config.n_layers)
        )
        self.norm = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, config.vocab_size)
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    def get_output_embeddings(self):
        return self.lm_head

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False, return_dict=True, **kwargs):
        pad = None if attention_mask is None else attention_mask == 0
        x = self.embed_tokens(input_ids)
        hidden = [x]
        for block in self.blocks:
            x = block(x, src_key_padding_mask=pad)
            hidden.append(x)
        x = self.norm(x)
        hidden.append(x)  # hidden_states[-1] is exactly what the LM head sees
        logits = self.lm_head(x)
        return MaskedLMOutput(logits=logits, hidden_states=tuple(hidden) if output_hidden_states else None)
'''


@pytest.fixture(scope="module")
def remote_dir(tmp_path_factory):
    """The checkpoint folder: code files + config.json with auto_map + model.safetensors + ablate.json."""
    from transformers import AutoConfig, AutoModelForMaskedLM, dynamic_module_utils

    # transformers copies local code into its modules cache (~/.cache/huggingface/modules by default) before
    # importing it: keep that under tmp_path too, and drop what it imported afterwards
    cache = str(tmp_path_factory.mktemp("hf_modules"))
    folder = tmp_path_factory.mktemp("remote") / "tiny-mlm"
    folder.mkdir()
    (folder / "configuration_tiny.py").write_text(textwrap.dedent(CONFIGURATION).lstrip())
    (folder / "modeling_tiny.py").write_text(textwrap.dedent(MODELING).lstrip())
    (folder / "config.json").write_text(json.dumps({
        "model_type": "tiny-mlm", "vocab_size": VOCAB, "hidden_size": 32, "n_layers": 2, "n_heads": 2, "max_len": 64,
        "auto_map": {"AutoConfig": "configuration_tiny.TinyMLMConfig",
                     "AutoModelForMaskedLM": "modeling_tiny.TinyMLM"},
    }))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dynamic_module_utils, "HF_MODULES_CACHE", cache)
        try:
            config = AutoConfig.from_pretrained(folder, trust_remote_code=True, local_files_only=True)
            with torch.random.fork_rng():
                torch.manual_seed(0)
                model = AutoModelForMaskedLM.from_config(config, trust_remote_code=True)
            model.save_pretrained(folder)  # weights; config.json keeps its auto_map, the code files stay
            (folder / "ablate.json").write_text(json.dumps(LAYOUT, indent=2))
            yield folder
        finally:
            if cache in sys.path:
                sys.path.remove(cache)
            package = dynamic_module_utils.TRANSFORMERS_DYNAMIC_MODULE_NAME
            for name in [n for n in sys.modules if n.split(".")[0] == package]:
                del sys.modules[name]


@pytest.fixture(scope="module")
def remote(remote_dir):
    return hf_adapter.load(remote_dir)


def test_checkpoint_folder(remote_dir):
    names = {p.name for p in remote_dir.iterdir()}
    assert {"config.json", "model.safetensors", "ablate.json", "configuration_tiny.py", "modeling_tiny.py"} <= names
    config = json.loads((remote_dir / "config.json").read_text())
    assert config["model_type"] == "tiny-mlm"
    assert config["auto_map"] == {"AutoConfig": "configuration_tiny.TinyMLMConfig",
                                  "AutoModelForMaskedLM": "modeling_tiny.TinyMLM"}
    assert hf_adapter.read_layout(remote_dir).trust_remote_code is True


def test_protocol(remote):
    assert type(remote.lm).__name__ == "TinyMLM"  # the folder's own code, not a transformers architecture
    assert type(remote.lm).__module__.startswith("transformers_modules.")
    assert (remote.vocab_size, remote.mask_id, remote.seq_len, remote.num_classes, remote.dim) == (128, 128, 49, 10, 32)
    assert remote.head_path == ("lm_head",)
    tokens = torch.randint(0, 129, (3, 49), generator=torch.Generator().manual_seed(0))
    logits, feature = remote(tokens, torch.tensor([0, 1, remote.null_label]))
    assert logits.shape == (3, 49, 128) and feature.shape == (3, 49, 32)
    assert torch.allclose(remote.head(feature), logits, atol=1e-5)  # head(feature) = the model's own logits
    # the class token conditions the features; drop_label is the null (CFG) class
    other, _ = remote(tokens, torch.tensor([5, 6, remote.null_label]))
    assert not torch.allclose(other[:2], logits[:2])
    dropped, _ = remote(tokens, torch.tensor([3, 4, 5]), torch.tensor([True, True, True]))
    null, _ = remote(tokens, torch.full((3,), remote.null_label))
    assert torch.equal(dropped, null)


def test_sinusoidal_position_fallback(remote):
    assert token_table(remote).shape == (129, 32)
    pe = remote.position_embedding()
    assert remote._pos_source == "sinusoidal"  # no absolute position table in the model
    assert pe.shape == (49, 32) and torch.isfinite(pe).all() and pe.abs().sum() > 0
    assert not torch.allclose(pe[0], pe[1])


@pytest.mark.parametrize("method,budget", [("vanilla", None), ("step_reduction", 2), ("feature_cache", 2),
                                           ("taylor", 2)])
def test_feature_level_methods_sample(remote, method, budget):
    acc = methods.build(method, steps=STEPS, budget=budget)
    out = MaskGITSampler(remote, SamplerConfig(steps=acc.steps)).sample(LABELS, torch.Generator().manual_seed(0), acc)
    assert out.tokens.shape == (4, 49)
    assert (out.tokens < remote.mask_id).all() and out.full_steps == sorted(acc.full)


def test_untrained_shortcut_is_feature_cache(remote):
    """The shortcut embeds new tokens with the model's input embedding + the sinusoidal position table."""
    sampler = MaskGITSampler(remote, SamplerConfig(steps=STEPS))
    fc = methods.build("feature_cache", steps=STEPS, budget=2)
    a = sampler.sample(LABELS, torch.Generator().manual_seed(0), fc)
    acc = methods.build("shortcut", steps=STEPS, budget=2)
    acc.net = Shortcut(ShortcutConfig(), token_table(remote), remote.position_embedding()).eval()
    assert remote._pos_source == "sinusoidal"
    b = sampler.sample(LABELS, torch.Generator().manual_seed(0), acc)
    assert torch.equal(a.tokens, b.tokens)


def test_same_seed_same_samples(remote, remote_dir):
    sampler = MaskGITSampler(remote, SamplerConfig(steps=STEPS))

    def sample(seed, base=None):
        s = sampler if base is None else MaskGITSampler(base, SamplerConfig(steps=STEPS))
        return s.sample(LABELS, torch.Generator().manual_seed(seed), methods.build("vanilla", steps=STEPS)).tokens

    a = sample(0)
    assert torch.equal(a, sample(0))
    assert torch.equal(a, sample(0, hf_adapter.load(remote_dir)))  # a fresh load of the folder: same weights
    assert not torch.equal(a, sample(1))  # the seed does matter


def test_untrusted_remote_code_one_line(remote_dir, tmp_path):
    folder = shutil.copytree(remote_dir, tmp_path / "tiny-mlm")
    (folder / "ablate.json").write_text(json.dumps({**LAYOUT, "trust_remote_code": False}))
    with pytest.raises(AblateError, match=r"^base: .* could not be loaded as a masked LM") as info:
        hf_adapter.load(folder)
    msg = str(info.value)
    assert "\n" not in msg and '"trust_remote_code": true' in msg
    assert "custom code" in msg  # refused for its code (transformers' words), not for a broken folder
