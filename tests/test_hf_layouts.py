"""The adapter's model-agnostic lookups on a GPT-2-style masked LM built in memory (`transformer.wte`,
`transformer.wpe`, `lm_head`, `n_positions` in its config): the absolute position table is found by
name, the length limit is read from the config's own key, and the shortcut's cache key covers every
file of the checkpoint folder, sub-folders of local code included."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from ablate.errors import AblateError
from ablate.models import hf_adapter

LAYOUT = hf_adapter.TokenLayout(image_vocab_size=128, seq_len=49, num_classes=10, mask_token_id=128, class_offset=129)
VOCAB, D = 140, 16


class GPTStyleMLM(nn.Module):
    """Token + learned absolute positions (`wpe`), one bidirectional layer, an untied LM head."""

    def __init__(self, n_positions: int):
        super().__init__()
        torch.manual_seed(0)
        self.config = SimpleNamespace(hidden_size=D, n_positions=n_positions)
        self.transformer = nn.Module()
        self.transformer.wte = nn.Embedding(VOCAB, D)
        self.transformer.wpe = nn.Embedding(n_positions, D)
        self.transformer.layer = nn.TransformerEncoderLayer(D, 2, 2 * D, dropout=0.0, batch_first=True)
        self.lm_head = nn.Linear(D, VOCAB)

    def get_input_embeddings(self):
        return self.transformer.wte

    def get_output_embeddings(self):
        return self.lm_head

    def forward(self, input_ids, output_hidden_states=False, return_dict=True):
        pos = torch.arange(input_ids.shape[1])
        x = self.transformer.layer(self.transformer.wte(input_ids) + self.transformer.wpe(pos))
        return SimpleNamespace(logits=self.lm_head(x), hidden_states=(x,))


def test_wpe_is_the_position_table():
    lm = GPTStyleMLM(64)
    adapter = hf_adapter.HFMaskedLM(lm, LAYOUT)
    pe = adapter.position_embedding()
    assert adapter._pos_source == "model" and adapter.head_path == ("lm_head",)
    torch.testing.assert_close(pe, lm.transformer.wpe.weight[1:50])  # row 0 is the class token's


def test_length_limit_read_from_n_positions():
    with pytest.raises(AblateError, match=r"^base: ablate\.json: seq_len 49 \+ 1 class token exceed the model's "
                                          r"n_positions \(40\)$"):
        hf_adapter.HFMaskedLM(GPTStyleMLM(40), LAYOUT)


def test_weights_hash_covers_subfolders(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "layers.py").write_text("X = 1\n")
    adapter = hf_adapter.HFMaskedLM(GPTStyleMLM(64), LAYOUT, folder=tmp_path)
    first = adapter.weights_hash()
    (tmp_path / "pkg" / "__pycache__").mkdir()
    (tmp_path / "pkg" / "__pycache__" / "stale.py").write_text("ignored\n")
    assert adapter.weights_hash() == first  # byte-code caches and hidden folders are not the model
    (tmp_path / "pkg" / "layers.py").write_text("X = 2\n")
    assert adapter.weights_hash() != first  # local code in a sub-folder changes the shortcut's cache key
