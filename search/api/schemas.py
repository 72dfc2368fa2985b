"""Request and response models of the HTTP API (pydantic lives only at this edge)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from assetlens.search.paging import MAX_SQLITE_INT

MAX_ID = MAX_SQLITE_INT  # ids are SQLite integers
MAX_LIMIT = 100
Include = Literal["meta", "tags", "explanation", "transcript"]
FilterValue = str | dict[str, Any] | None

_FILTER_DOC = (
    "A filter: the compact string form (`kind:image region:(DE OR AT) created>=2024-01-01`) or the JSON "
    'AST (`{"and": [{"field": "kind", "eq": "image"}, {"tag": "shoe", "min_score": 0.25}]}`).'
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchRequest(_Strict):
    """A search: text, an example asset, a filter, or a combination."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"text": '"red sneaker" -blurry', "filter": "kind:image region:(DE OR AT)", "limit": 20},
                {"filter": {"field": "meta.campaign", "eq": "spring"}, "sort": "created:desc", "limit": 50},
            ]
        },
    )

    text: str | None = Field(
        default=None,
        max_length=1000,
        description='Query text: `"quoted phrase"`, `-negative`, `phrase^2` (weight). Also full-text words.',
    )
    negative: list[str] = Field(
        default=[], max_length=20, description="Phrases results should not look like."
    )
    image_asset_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="A stored asset as example."
    )
    vector: list[float] | None = Field(
        default=None,
        min_length=1,
        max_length=8192,
        description="A raw embedding of the library's model (its length = the model's dimension; "
        "normalised for you). Other lengths, NaN and all-zero vectors get 422.",
    )
    filter: FilterValue = Field(default=None, description=_FILTER_DOC)
    mode: Literal["semantic", "lexical", "hybrid"] = "hybrid"
    limit: int = Field(default=20, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(
        default=None, max_length=2048, description="`next_cursor` of the previous page."
    )
    min_relevance: float | None = Field(default=None, ge=0.0, le=1.0)
    sort: str | None = Field(
        default=None,
        max_length=200,
        description="`score` (default) or `FIELD[:asc|:desc]` (needs min_relevance with text).",
    )
    include: list[Include] = Field(default=["meta", "tags", "explanation"], max_length=4)
    collapse_duplicates: bool = Field(
        default=False,
        description="One result per near-duplicate group: its best-ranked member, the others listed "
        "in its explanation's `near_duplicates`.",
    )


class SimilarRequest(_Strict):
    """Assets that look like a stored asset (itself excluded)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"asset_id": 12, "limit": 10}]})

    asset_id: int = Field(ge=1, le=MAX_ID)
    filter: FilterValue = Field(default=None, description=_FILTER_DOC)
    limit: int = Field(default=20, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(default=None, max_length=2048)
    min_relevance: float | None = Field(default=None, ge=0.0, le=1.0)
    include: list[Include] = Field(default=["meta", "tags", "explanation"], max_length=4)


class TagOut(BaseModel):
    tag: str
    score: float
    source: str
    t: float | None = None


class SegmentOut(BaseModel):
    """A transcript segment (times in seconds)."""

    start: float
    end: float
    text: str
    language: str | None = None
    confidence: float | None = None


class OcrLineOut(BaseModel):
    """A line of text read in a picture."""

    text: str
    box: list[float] = Field(description="x0, y0, x1, y1 as fractions of the picture's width and height.")
    confidence: float
    t: float | None = Field(
        default=None, description="Seconds into the video of its keyframe (None: a still)."
    )


class TextOut(BaseModel):
    """The text read in an asset's pictures (OCR)."""

    asset_id: int
    model: str = Field(description="The reader that read it.")
    lines: list[OcrLineOut] = Field(description="In time order, then top to bottom.")
    match: OcrLineOut | None = Field(
        default=None, description="With q: the line holding most of its words (None if no line does)."
    )


class ResultOut(BaseModel):
    """One asset of a result page."""

    asset_id: int
    uri: str
    kind: str | None
    score: float | None = Field(description="Raw cosine similarity of the best vector (None: words only).")
    relevance: float | None = Field(
        description="Calibrated relevance 0..1: semantic, lexical or both fused (README, Searching). "
        "None only when a filter alone lists assets sorted by a field."
    )
    t: float | None = Field(description="Seconds into a video (best keyframe or matching speech).")
    match: str = Field(description="visual, text or both.")
    segment: dict[str, Any] | None = Field(description="The matching transcript segment.")
    tags: list[TagOut] | None = None
    meta: dict[str, Any] | None = None
    explanation: dict[str, Any] | None = None
    transcript: list[SegmentOut] | None = None


class PageOut(BaseModel):
    """One page of results."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "results": [
                        {
                            "asset_id": 3,
                            "uri": "/photos/cat.jpg",
                            "kind": "image",
                            "score": 0.31,
                            "relevance": 0.92,
                            "t": None,
                            "match": "visual",
                            "segment": None,
                            "tags": [{"tag": "cat", "score": 0.29, "source": "clip", "t": None}],
                        }
                    ],
                    "next_cursor": "WzEsMC4zMSwzLDEsOCwiYWJjIl0",
                    "took_ms": 12.5,
                }
            ]
        }
    )

    results: list[ResultOut]
    next_cursor: str | None
    took_ms: float


class AssetOut(BaseModel):
    """One asset with everything known about it."""

    id: int
    uri: str
    content_hash: str | None
    kind: str | None
    mime: str | None
    size: int
    mtime: float
    width: int | None
    height: int | None
    duration: float | None
    created: str | None
    ingested_at: str
    status: str
    error: str | None
    duplicate_of: int | None
    poster_t: float | None
    transcript_model: str | None
    meta: dict[str, Any]
    embedded: dict[str, Any]
    exif: dict[str, Any]
    xmp: dict[str, Any]
    media: dict[str, Any]
    tags: list[TagOut]
    transcript: list[SegmentOut]
    ocr: list[OcrLineOut] = Field(description="Text read in its pictures (OCR).")


class MetaOut(BaseModel):
    """An asset's ``meta`` after an update."""

    asset_id: int
    meta: dict[str, Any]


class KeyframeOut(BaseModel):
    t: float | None = Field(description="Seconds into the video (None for a still image).")
    vector_id: int
    tags: list[TagOut] = Field(description="Tags whose best frame is this one.")


class KeyframesOut(BaseModel):
    asset_id: int
    poster_t: float | None
    keyframes: list[KeyframeOut]


class TagCount(BaseModel):
    tag: str
    count: int


class TagsOut(BaseModel):
    tags: list[TagCount]


class FacetValue(BaseModel):
    """One value of a field and how many assets hold it."""

    value: str | int | float | bool = Field(
        description="The value (never null); a date bucket's ISO prefix with `by`; a tag's text for `tag`."
    )
    count: int = Field(ge=1, description="Assets passing the filter that hold this value.")


class FacetsOut(BaseModel):
    """``GET /v1/facets/{field}``: the one shape of a facet answer (the search page reads it as is)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"field": "kind", "values": [{"value": "image", "count": 12}, {"value": "audio", "count": 3}]}
            ]
        }
    )

    field: str = Field(description="The field asked for, as given.")
    values: list[FacetValue] = Field(description="Most frequent first, ties by value; at most `limit`.")


class IngestRequest(_Strict):
    """Server paths to ingest (each inside a configured library root)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"paths": ["campaigns/2024-spring"], "force": False}]}
    )

    paths: list[str] = Field(min_length=1, max_length=100)
    force: bool = Field(default=False, description="Re-decode and re-embed unchanged files.")
    prune: bool = Field(default=False, description="Remove assets under the paths whose files are gone.")
    transcribe: bool = Field(default=True, description="Transcribe speech (audio and video).")


class TagRequest(_Strict):
    """Re-tag every asset, optionally with a vocabulary added to the default one."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"vocab": "[products]\nsneaker = trainer, running shoe > shoe, footwear\n"}]
        },
    )

    vocab: str | None = Field(default=None, max_length=1_000_000, description="Vocabulary file text.")


class JobAccepted(BaseModel):
    job_id: int
    status: str
    uploads: dict[str, str] | None = Field(
        default=None, description="Stored path of each uploaded file name."
    )


class FailureOut(BaseModel):
    uri: str
    stage: str
    reason: str
    at: str


class JobOut(BaseModel):
    """A job: an API request run by a worker process, or any run of the CLI."""

    id: int
    kind: str
    source: Literal["api", "cli"]
    status: str = Field(description="queued, running, done, failed or interrupted.")
    started_at: str
    finished_at: str | None
    counts: dict[str, int | bool]
    failures: list[FailureOut] = Field(description="The first 100 failures.")
    failure_count: int
    run_job_id: int | None = Field(description="The job the ingest run recorded (its failures are these).")
    error: str | None


class KeyCreate(_Strict):
    scope: Literal["read", "write", "admin"]
    name: str = Field(default="", max_length=200)


class KeyOut(BaseModel):
    id: int
    name: str
    scopes: str
    created_at: str
    revoked_at: str | None
    last_used_at: str | None


class KeyCreated(BaseModel):
    """A new key: shown once, only its hash is kept."""

    id: int
    key: str
    scopes: str
    name: str


class KeysOut(BaseModel):
    keys: list[KeyOut]


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}
