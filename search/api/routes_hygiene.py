"""``GET /v1/duplicates`` (near-duplicate groups) and ``/v1/tags/learned`` (tags learned from examples)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from assetlens.models.vocab import load_vocabulary
from assetlens.search import learned
from assetlens.search.api.auth import Reader, Writer
from assetlens.search.api.common import api_state, in_session
from assetlens.search.api.errors import problems
from assetlens.search.api.runtime import Session
from assetlens.search.catalog.meta import filter_sql
from assetlens.search.duplicates import PAIR_MAX_DISTANCE, PAIR_MIN_SIMILARITY, NearDuplicates

router = APIRouter(prefix="/v1", tags=["hygiene"])


class DuplicateAsset(BaseModel):
    asset_id: int
    uri: str
    similarity: float = Field(description="CLIP similarity to the representative (1 for itself).")
    distance: int = Field(description="Differing perceptual-hash bits (of 128) to the representative.")
    width: int | None = None
    height: int | None = None
    created: str | None = None


class DuplicateGroupOut(BaseModel):
    representative: int = Field(description="Asset id of the largest (then oldest) member, listed first.")
    size: int
    assets: list[DuplicateAsset]


class DuplicatesOut(BaseModel):
    groups: list[DuplicateGroupOut]
    threshold: float
    max_distance: int


@router.get("/duplicates", response_model=DuplicatesOut, responses=problems())
async def list_duplicates(
    request: Request,
    _: Reader,
    threshold: Annotated[
        float | None, Query(ge=PAIR_MIN_SIMILARITY, le=1.0, description="Least CLIP similarity.")
    ] = None,
    max_distance: Annotated[
        int | None, Query(ge=0, le=PAIR_MAX_DISTANCE, description="Most differing hash bits of 128.")
    ] = None,
    filter: Annotated[str | None, Query(max_length=10_000, description="Only assets passing it.")] = None,
) -> Any:
    """Near-duplicate groups, largest first: CLIP similarity and perceptual hashes both agree.

    Lists what the library has compared (every ingest compares its new assets); assets stored
    before hashes existed need `assetlens duplicates` once to read their files.
    """
    settings = api_state(request).library.settings

    def work(session: Session) -> dict[str, Any]:
        near = NearDuplicates(session.store, settings.duplicates_threshold, settings.duplicates_max_distance)
        allowed = None
        if filter and filter.strip():
            where, params = filter_sql(session.store, filter)
            allowed = set(session.store.matching_asset_ids(where, params).tolist())
        groups = near.groups(threshold, max_distance, allowed)
        return {
            "groups": [g.as_dict() for g in groups],
            "threshold": near.threshold if threshold is None else threshold,
            "max_distance": near.max_distance if max_distance is None else max_distance,
        }

    return await in_session(request, work)


Example = int | Annotated[str, Field(min_length=1, max_length=10_000)]


class LearnRequest(BaseModel):
    """A tag to learn from example assets."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "hero-shot", "positive": [12, 40, "meta.campaign:spring"]}]},
    )

    name: str = Field(
        min_length=1, max_length=200, description="The tag (a vocabulary tag's name needs replace)."
    )
    positive: list[Example] = Field(
        min_length=1,
        max_length=1000,
        description="Assets with the tag: ids, ingested files' paths, or filters.",
    )
    negative: list[Example] = Field(default=[], max_length=1000, description="Assets without it.")
    replace: bool = Field(
        default=False, description="Let the learned tag replace the vocabulary tag of its name."
    )


class LearnedReport(BaseModel):
    folds: int
    precision: float | None = Field(description="On held-out marked examples; null without negatives.")
    recall: float
    f1: float | None
    background_tagged: float = Field(description="Share of held-out background assets the tag went to.")
    positives: int
    negatives: int
    background: int


class LearnedTagOut(BaseModel):
    name: str
    model: str
    method: str
    threshold: float
    replaces_vocabulary: bool
    positives: list[int]
    negatives: list[int]
    report: LearnedReport | dict[str, Any]
    created_at: str
    trained_at: str
    tagged: int | None = Field(default=None, description="Assets holding the tag.")


class LearnedTagsOut(BaseModel):
    learned: list[LearnedTagOut]


@router.get("/tags/learned", response_model=LearnedTagsOut, responses=problems())
async def list_learned(request: Request, _: Reader) -> Any:
    """The learned tags: examples, cross-validated precision and recall, assets tagged."""

    def work(session: Session) -> dict[str, Any]:
        store = session.store
        return {
            "learned": [
                {**t.summary(), "tagged": store.learned.tagged_count(t.name)} for t in store.learned.all()
            ]
        }

    return await in_session(request, work)


@router.post("/tags/learned", response_model=LearnedTagOut, status_code=201, responses=problems(404))
async def learn_tag(body: LearnRequest, request: Request, _: Writer) -> Any:
    """Learn a tag from examples (at least 3 positives), tag every asset with it now and every asset
    ingested later (source `learned`); the report is cross-validated. A name already learned is
    refitted with the examples added (an asset may change sides)."""
    state = api_state(request)

    def work(session: Session) -> dict[str, Any]:
        store = session.store
        positives = learned.resolve_examples(store, body.positive, "positive")
        negatives = learned.resolve_examples(store, body.negative, "negative")
        if store.learned.get(body.name.strip()) is not None:
            report = learned.relearn(store, body.name, positives, negatives)
        else:
            path = state.library.settings.vocabulary_path
            vocabulary = load_vocabulary(path if path.exists() else None).tags()
            report = learned.learn(store, body.name, positives, negatives, vocabulary=vocabulary,
                                   replace_vocabulary=body.replace)  # fmt: skip
        return report.as_dict()

    return await in_session(request, work)
