"""Property-based fuzzing of the HTTP API against its own OpenAPI schema (schemathesis).

Every operation of ``/openapi.json`` gets valid and invalid requests (bodies, query, path and
multipart fields) sent in-process to the real app over a temporary library of the sample photos
(tiny model), with an admin key. Checks: no 5xx answer, and every response (status, content
type, body) conforms to the schema. Ingest is fuzzed too: its server-path root is an empty
temporary folder, so accepted requests start jobs with nothing to read, one at a time.

The key the fuzzer holds is never revoked by it (a revoke of that id is pointed elsewhere), and
deletes of the sample photos are pointed at one spare asset, so later operations still find
assets and keep being reached past authentication. ``ASSETLENS_FUZZ_EXAMPLES`` raises the number
of examples per operation for a deeper run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
import schemathesis
from helpers import PHOTOS, ingester_for, library_settings, open_library
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

pytestmark = pytest.mark.slow
MAX_EXAMPLES = int(os.environ.get("ASSETLENS_FUZZ_EXAMPLES", "25"))  # per operation and phase


def _schema() -> Any:
    """The app's own OpenAPI document (it does not depend on the library, so no library is opened)."""
    from assetlens.search.api.app import create_app
    from assetlens.search.api.settings import ApiSettings

    return schemathesis.openapi.from_dict(create_app(ApiSettings()).openapi())


# Loaded at collection: schemathesis' fixture-based loader does not work with pytest 9.
schema = _schema()


class Target(NamedTuple):
    app: Any
    key: str
    key_id: int
    spare: int  # the asset id deletes are pointed at


def _as_int(value: Any) -> int | None:
    """A path parameter as the integer the server will read (they come as ints or digit strings)."""
    text = str(value).strip()
    return int(text) if text.isascii() and text.lstrip("+").isdigit() else None


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The app over a library of the sample photos, an admin key and its id; shut down after the module."""
    from schemathesis.python import asgi

    from assetlens.enrich.jobs import ProcessJobWorker
    from assetlens.search.api.app import create_app
    from assetlens.search.api.auth import create_key
    from assetlens.search.api.settings import ApiSettings

    root = tmp_path_factory.mktemp("fuzz")
    photos = root / "photos"
    shutil.copytree(PHOTOS, photos, ignore=shutil.ignore_patterns("*.txt"))
    (root / "roots").mkdir()
    lib = open_library(root / "data")
    ingester_for(lib).ingest([photos])
    # One more asset, the only one the fuzzer may delete (the others stay for the later operations).
    shutil.copy(photos / "cat.jpg", root / "spare.jpg")
    ingester_for(lib).ingest([root / "spare.jpg"])
    spare = lib.store.max_asset_id()
    key_id, key = create_key(lib.store, "admin", "fuzz")
    settings = ApiSettings(roots=(root / "roots",), max_upload_mb=2, job_grace_s=2)
    app = create_app(settings, lib, ProcessJobWorker(library_settings(lib)))
    try:
        yield Target(app, key, key_id, spare)
    finally:
        asgi.shutdown_lifespans()  # the app's lifespan, started by schemathesis: stops jobs, closes stores
        lib.close()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
def test_api_conforms_to_its_schema(case: Any, target: Target) -> None:
    params = case.path_parameters or {}
    if (
        case.method == "DELETE"
        and case.path == "/v1/keys/{key_id}"
        and _as_int(params.get("key_id")) == target.key_id
    ):
        params["key_id"] = target.key_id + 1_000_000
    if case.method == "DELETE" and case.path == "/v1/assets/{asset_id}":
        value = _as_int(params.get("asset_id"))
        if value is not None and 1 <= value < target.spare:
            params["asset_id"] = target.spare
    case.call_and_validate(
        app=target.app,
        headers={"Authorization": f"Bearer {target.key}"},
        checks=[not_a_server_error, response_schema_conformance],
    )
