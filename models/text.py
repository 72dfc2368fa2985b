"""CLIP's text tower in PyTorch, on tokens whose padding is dropped where it cannot change the result.

The tokens come from :mod:`models.tokenizer` (no torch); :func:`models.tokenizer.trim_tokens`
drops the padding. Used by :class:`models.torch_towers.TorchTowers` in every PyTorch precision
and traced into the ONNX text graph of the ``onnx-int8`` mode (:mod:`models.onnx_export`).
"""

from __future__ import annotations

from typing import Any

import open_clip
import torch


def can_trim(model: Any) -> bool:
    """Whether :func:`models.tokenizer.trim_tokens` may drop the padding of this model's text input."""
    mask = getattr(model, "attn_mask", None)
    return isinstance(model, open_clip.model.CLIP) and model.text_pool_type == "argmax" and mask is not None


def text_features(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """Text features of tokens already trimmed by :func:`models.tokenizer.trim_tokens` (any length up to 77).

    Written with tensor shapes only, so the ONNX export keeps the sequence axis dynamic.
    """
    n = tokens.shape[1]
    try:
        cast = model.transformer.get_cast_dtype()
    except AttributeError:  # dynamically quantised Linear layers have no weight tensor: float
        cast = torch.float32
    x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:n].to(cast)
    x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask[:n, :n]))
    x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
    projection = model.text_projection
    if projection is None:
        return x
    return projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection


def full_text_features(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text`` itself: the text graph of models whose padding cannot be trimmed."""
    return model.encode_text(tokens)
