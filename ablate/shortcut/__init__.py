"""The learned shortcut of MIGM-Shortcut: model, teacher trajectories, training."""

from ablate.shortcut.model import Shortcut, ShortcutConfig

__all__ = ["Shortcut", "ShortcutConfig"]
