"""Speech to transcript segments in the store: for ingest and for ``assetlens transcribe``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from assetlens.enrich.audio import iter_audio_chunks
from assetlens.enrich.errors import DecodeError
from assetlens.models.whisper import Transcriber
from assetlens.search.store import Asset, Store


def transcribe_file(transcriber: Transcriber, path: Path) -> list[dict[str, Any]]:
    """Transcribe a file's first audio stream into JSON-ready segments.

    Raises:
        DecodeError: The audio cannot be decoded.
    """
    return [segment.as_dict() for segment in transcriber.transcribe(iter_audio_chunks(path))]


def has_sound(asset: Asset) -> bool:
    """An ok audio asset, or an ok video with an audio stream."""
    sound = asset.kind == "audio" or (asset.kind == "video" and bool(asset.media.get("has_audio")))
    return asset.status == "ok" and sound


def needs_transcript(asset: Asset) -> bool:
    """An asset with sound that has no transcript yet."""
    return has_sound(asset) and asset.transcript_model is None


@dataclass
class TranscribeReport:
    """What ``assetlens transcribe`` did."""

    transcribed: int = 0
    segments: int = 0
    failed: int = 0
    skipped: int = 0


def transcribe_assets(
    store: Store, transcriber: Transcriber, assets: Sequence[Asset], job_id: int, progress: bool = False
) -> TranscribeReport:
    """(Re-)transcribe assets, replacing their transcripts; vectors and tags are not touched.

    Each asset is committed on its own, so an interrupted run keeps what is done. A file that
    cannot be decoded is recorded in ``failures`` (stage ``transcribe``) and keeps its old
    transcript.
    """
    report = TranscribeReport()
    for asset in tqdm(assets, unit="file", disable=not progress):
        if not has_sound(asset):
            report.skipped += 1
            continue
        try:
            segments = transcribe_file(transcriber, Path(asset.uri))
        except (DecodeError, OSError) as exc:
            with store.transaction():
                store.record_failure(job_id, asset.uri, "transcribe", getattr(exc, "reason", str(exc)))
            report.failed += 1
            continue
        with store.transaction():
            store.replace_segments(asset.id, transcriber.model_id, segments)
        report.transcribed += 1
        report.segments += len(segments)
    return report
