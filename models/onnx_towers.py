"""The ``onnx-int8`` precision mode at run time: CLIP's towers as int8 ONNX Runtime sessions.

:mod:`models.onnx_export` exports each tower from the loaded fp32 PyTorch model once per model,
quantises its matrix products to int8 and checks it against fp32. The result is cached once per
machine (:func:`models.cache.onnx_dir`, keyed by model id, this format and package versions).
This module reads that cache and needs neither PyTorch nor open_clip: a process whose export is
cached starts without importing them (about 5 s and 950 MB less), and holds no PyTorch model
(~600 MB less for ViT-B-32). Each tower's session opens on first use: a text search never loads
the image tower, an ingest whose label embeddings are cached never loads the text tower.

The cache is a directory holding ``image.onnx``, ``text.onnx`` and ``meta.json``, published
whole (:func:`models.cache.publish_dir`). ``meta.json`` records the accuracy check: a quantised
model whose embeddings fall below :data:`models.precision.MIN_COSINE` to fp32 is not used
(``auto`` falls back to fp32; an explicit ``onnx-int8`` is refused).

- The image tower takes ``uint8`` NHWC pixels and normalises them in the graph, so the caller
  hands over the prepared crops as they are (no float copies or transposes in Python).
- The text tower takes tokens already cut after the longest end-of-text token (see
  :func:`models.tokenizer.trim_tokens`) when :attr:`OnnxTowers.trimmed`; its sequence axis is dynamic.
"""

from __future__ import annotations

import functools
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from assetlens.models.errors import PrecisionError

OPSET = 17
QUANTISATION = "int8-matmul"  # dynamic int8, MatMul only, signed weights
FORMAT = 2  # bump when the exported graphs change shape or meaning (2: float16 token embedding)


def read_meta(directory: Path, model_id: str) -> dict[str, Any] | None:
    """The cache's ``meta.json`` when it is complete and belongs to ``model_id``, else None."""
    try:
        meta = json.loads((directory / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("model_id") != model_id or meta.get("format") != FORMAT:
        return None
    if meta.get("passed") and not all((directory / name).is_file() for name in ("image.onnx", "text.onnx")):
        return None
    return meta


class OnnxTowers:
    """Both towers of one model as ONNX Runtime sessions.

    Args:
        directory: A cache directory written by :func:`models.onnx_export.export_towers`.
        meta: Its ``meta.json``, as the caller already read (or is about to write) it.
        threads: Intra-op threads of each session (0: ORT's default, one per core).
    """

    def __init__(self, directory: Path, meta: dict[str, Any], threads: int = 0) -> None:
        import onnxruntime as ort  # imported late: only this mode needs it

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Spinning workers burn a core while the main thread writes a batch, taking it from the
        # decode threads; off, the pipeline got more images per CPU-second on 2 cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.meta = meta
        self.trimmed = bool(self.meta["text_trimmed"])
        cpu = ["CPUExecutionProvider"]
        self._open = functools.partial(ort.InferenceSession, sess_options=options, providers=cpu)
        self._directory = directory
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Raw (unnormalised) image features of ``uint8`` crops ``(N, size, size, 3)``."""
        inputs = {"pixels": np.ascontiguousarray(pixels, dtype=np.uint8)}
        return np.asarray(self._session("image").run(None, inputs)[0], dtype=np.float32)

    def encode_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """Raw text features of ``int64`` tokens (trimmed when :attr:`trimmed`)."""
        inputs = {"tokens": np.ascontiguousarray(tokens, dtype=np.int64)}
        return np.asarray(self._session("text").run(None, inputs)[0], dtype=np.float32)

    def _session(self, tower: str) -> Any:
        """The tower's session, opened on first use (ViT-B-32: ~0.3 s and 100-150 MB each)."""
        with self._lock:
            if tower not in self._sessions:
                path = self._directory / f"{tower}.onnx"
                try:
                    self._sessions[tower] = self._open(str(path))
                except Exception as exc:  # ORT's own errors: a truncated or damaged file
                    raise PrecisionError(
                        f"cannot load the cached ONNX {tower} tower {path} ({type(exc).__name__}: "
                        f"{exc}); delete {self._directory} and the next run rebuilds it"
                    ) from exc
            return self._sessions[tower]
