"""CLIP text tower helpers: dropping the padding that cannot change the result.

Used by :class:`models.clip.ClipEncoder` in every PyTorch precision and traced into the ONNX
text graph of the ``onnx-int8`` mode (:mod:`models.onnx_towers`).
"""

from __future__ import annotations

from typing import Any

import open_clip
import torch


def can_trim(model: Any) -> bool:
    """Whether :func:`encode_text_trimmed` may drop the padding of this model's text input."""
    mask = getattr(model, "attn_mask", None)
    return isinstance(model, open_clip.model.CLIP) and model.text_pool_type == "argmax" and mask is not None


def trim_tokens(tokens: torch.Tensor) -> torch.Tensor:
    """Cut the tokens after the longest text's end-of-text token (the highest token id)."""
    n = int(tokens.argmax(dim=-1).max()) + 1
    return tokens[:, :n]


def encode_text_trimmed(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text`` without the padding: the same result, several times faster.

    CLIP's text tower is causal and pools at the end-of-text token (the highest token id), so
    positions after the longest prompt's end can never influence the result; dropping them
    turns 77-token work into ~10-token work for typical queries and tag prompts. Models of
    another shape fall back to the full computation.
    """
    if not can_trim(model):
        return model.encode_text(tokens)
    return text_features(model, trim_tokens(tokens))


def text_features(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """Text features of tokens already trimmed by :func:`trim_tokens` (any length up to 77).

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
