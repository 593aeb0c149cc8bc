"""Base masked image generators behind one protocol (see protocol.py)."""

from ablate.models.maskgit import MaskGIT, MaskGITConfig
from ablate.models.protocol import BaseModel, KVCache

__all__ = ["BaseModel", "KVCache", "MaskGIT", "MaskGITConfig"]
