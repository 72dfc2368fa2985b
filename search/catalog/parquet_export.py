"""Export the library's vectors as Parquet, the format ``assetlens import`` reads back.

One row per vector (a video has one per keyframe): ``uri``, ``t``, ``kind``, ``embedding`` (a
fixed-size list of float16, as stored), and on the first row of each asset its ``meta`` (JSON
text), ``tags`` (``{tag, score, source, model, t}``) and ``created``; later rows of the same asset
leave them null, so an import sets them once. The schema's ``assetlens.model`` metadata names the
model. Rows are written a batch at a time, so memory stays bounded.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from assetlens.search.catalog.vector_sources import MODEL_KEY
from assetlens.search.store import Store

TAG_TYPE = pa.struct(
    [
        ("tag", pa.string()),
        ("score", pa.float64()),
        ("source", pa.string()),
        ("model", pa.string()),
        ("t", pa.float64()),
    ]
)


def export_parquet(store: Store, path: Path, batch: int = 16384) -> int:
    """Write every vector of the library to ``path``; returns the rows written."""
    dim = store.vector_dim()
    schema = pa.schema(
        [("uri", pa.string()), ("t", pa.float64()), ("kind", pa.string()),
         ("embedding", pa.list_(pa.float16(), max(dim, 1))), ("meta", pa.string()),
         ("tags", pa.list_(TAG_TYPE)), ("created", pa.string())],
        metadata={MODEL_KEY: (store.model_id or "").encode()},
    )  # fmt: skip
    rows = 0
    with pq.ParquetWriter(path, schema) as writer:
        for vids, owners, vectors in store.iter_vector_rows(batch=batch):
            ids = sorted({int(a) for a in owners})
            assets, tags, firsts = store.assets(ids), store.tags_of(ids), store.first_vector_ids(ids)
            times = store.vector_owners(vids.tolist())
            columns: dict[str, list[Any]] = {k: [] for k in ("uri", "t", "kind", "meta", "tags", "created")}
            for vid, aid in zip(vids.tolist(), owners.tolist(), strict=True):
                asset, first = assets[aid], firsts[aid] == vid
                columns["uri"].append(asset.uri)
                columns["t"].append(times[vid][1])
                columns["kind"].append(asset.kind)
                columns["meta"].append(json.dumps(asset.meta, ensure_ascii=False) if first else None)
                columns["tags"].append([asdict(t) for t in tags[aid]] if first else None)
                columns["created"].append(asset.created if first else None)
            embedding = pa.FixedSizeListArray.from_arrays(
                pa.array(vectors.astype(np.float16).reshape(-1)), dim
            )
            arrays = [pa.array(columns[name], schema.field(name).type) for name in ("uri", "t", "kind")]
            arrays.append(embedding)
            arrays += [
                pa.array(columns[name], schema.field(name).type) for name in ("meta", "tags", "created")
            ]
            writer.write_batch(pa.record_batch(arrays, schema=schema))
            rows += len(vids)
    return rows
