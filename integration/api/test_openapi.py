"""openapi.yaml is a valid OpenAPI document and describes exactly the routes the daemon answers.

* The spec passes openapi-spec-validator and is internally consistent (ids, shared error answers).
* Spec -> daemon: every documented method and path is answered by a live daemon (not its "no
  route" 404), with a status the spec lists for that operation: with no token, a wrong token, the
  right token, and, for the admin routes, on a daemon with an admin token.
* Daemon -> spec: every method on every path the daemon might route (the spec's paths plus every
  path the route files of Sources/OptimizerServer could build) that the daemon answers is
  documented, and every route template the daemon reports in /metrics is documented.
* The daemon serves this very file at /openapi.yaml.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
import requests
from api_support import ADMIN_TOKEN, REPO, SPEC_PATH, Session, create_session
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
SOURCES = REPO / "Sources" / "OptimizerServer"


def operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(METHOD, path template) -> operation object."""
    found = {}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                found[(method.upper(), path)] = operation
    return found


def documented_statuses(operation: dict[str, Any]) -> set[int]:
    return {int(code) for code in operation["responses"] if code.isdigit()}


def concrete(template: str, session: Session) -> str:
    return template.replace("{id}", session.id)


def is_no_route(response: requests.Response) -> bool:
    """The router's own answer when no route has this method and path, as opposed to a route's
    404: a 404 "no route", or a 405 (the path has routes for other methods, named in `Allow`)."""
    if response.status_code == 405:
        return "Allow" in response.headers
    if response.status_code != 404:
        return False
    if response.request.method == "HEAD":
        return True  # no body to tell; a route's 404 needs a body-carrying method to be seen
    try:
        return str(response.json().get("detail", "")).startswith("no route for ")
    except ValueError:
        return False


def request(http: requests.Session, method: str, url: str, headers: dict[str, str]) -> requests.Response:
    """A request with an empty body where the method has one: every body route refuses it cheaply."""
    body = b"" if method in {"POST", "PUT", "PATCH"} else None
    return http.request(method, url, headers=headers, data=body, timeout=30)


# MARK: the document itself


def test_spec_passes_openapi_spec_validator(spec: dict[str, Any]) -> None:
    validate(spec, base_uri=SPEC_PATH.as_uri())
    assert spec["openapi"].startswith("3.1.")


def test_operations_are_complete_and_consistent(spec: dict[str, Any]) -> None:
    ids = [operation["operationId"] for operation in operations(spec).values()]
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    for (method, path), operation in operations(spec).items():
        label = f"{method} {path}"
        assert operation.get("summary") and operation.get("description"), f"{label}: summary and description"
        statuses = documented_statuses(operation)
        assert any(200 <= status < 300 for status in statuses), f"{label}: no success answer"
        if path.startswith("/v1/sessions/{id}"):
            assert {401, 403, 404, 500} <= statuses, f"{label}: the auth answers of a session route"
            assert "security" not in operation, (
                f"{label}: session routes use the global session/admin security"
            )
        if path.startswith("/v1/"):
            assert 500 in statuses, f"{label}: 500"
        if "requestBody" in operation:
            assert {400, 413, 415} <= statuses, (
                f"{label}: the answers to a bad, large or wrongly encoded body"
            )
            names = {
                parameter.get("$ref", "").rsplit("/", 1)[-1] for parameter in operation.get("parameters", [])
            }
            assert "ContentEncoding" in names, f"{label}: Content-Encoding"
        content = operation.get("requestBody", {}).get("content", {})
        if "application/octet-stream" in content:
            names = {
                parameter.get("$ref", "").rsplit("/", 1)[-1] for parameter in operation.get("parameters", [])
            }
            assert "Expect" in names, f"{label}: Expect: 100-continue for large uploads"
        if method in {"POST", "PUT", "PATCH", "DELETE"} and path.startswith("/v1/"):
            assert {503, 507} <= statuses, f"{label}: routes that write answer 503/507 for storage problems"


def test_error_answers_are_problem_documents(spec: dict[str, Any]) -> None:
    shared = spec["components"]["responses"]
    for (method, path), operation in operations(spec).items():
        for code, answer in operation["responses"].items():
            if not code.isdigit() or int(code) < 400:
                continue
            if "$ref" in answer:
                answer = shared[answer["$ref"].rsplit("/", 1)[-1]]
            content = answer.get("content", {})
            if path == "/readyz":
                assert "application/json" in content
                continue
            assert list(content) == ["application/problem+json"], f"{method} {path} {code}"
            assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def test_every_example_matches_its_schema(spec: dict[str, Any]) -> None:
    """The examples are what a reader copies: each must validate against the schema next to it."""
    registry = Registry().with_resource(
        "urn:openapi", Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    shared = spec["components"]
    checked = 0
    failures = []

    def check(value: Any, pointer: str, where: str) -> None:
        nonlocal checked
        validator = Draft202012Validator({"$ref": "urn:openapi" + pointer}, registry=registry)
        for error in validator.iter_errors(value):
            failures.append(f"{where}: {error.message} at {list(error.absolute_path)}")
        checked += 1

    def media(content: dict[str, Any], base: tuple[str, ...], where: str) -> None:
        for media_type, body in content.items():
            if "schema" not in body:
                continue
            schema_pointer = _pointer(*base, media_type, "schema")
            if "example" in body:
                check(body["example"], schema_pointer, f"{where} {media_type} example")
            for name, example in body.get("examples", {}).items():
                check(example["value"], schema_pointer, f"{where} {media_type} examples.{name}")

    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            where = f"{method.upper()} {path}"
            if "requestBody" in operation:
                media(
                    operation["requestBody"]["content"],
                    ("paths", path, method, "requestBody", "content"),
                    where,
                )
            for code, answer in operation["responses"].items():
                if "$ref" in answer:
                    continue  # shared answers are checked below, once
                media(
                    answer.get("content", {}),
                    ("paths", path, method, "responses", code, "content"),
                    f"{where} {code}",
                )
    for name, answer in shared["responses"].items():
        media(answer.get("content", {}), ("components", "responses", name, "content"), f"responses.{name}")
    assert checked >= 20, f"only {checked} examples found"
    assert not failures, "\n".join(failures)


def test_daemon_serves_this_file(daemon: Any, http: requests.Session, spec_bytes: bytes) -> None:
    response = http.get(daemon.url + "/openapi.yaml")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/yaml"
    assert response.content == spec_bytes, (
        "the daemon's embedded openapi.yaml differs from the repository's: rebuild the daemon "
        "(SwiftPM compiles the file into the binary)"
    )


# MARK: spec -> daemon


def test_every_documented_operation_is_answered_with_a_documented_status(
    spec: dict[str, Any], daemon: Any, admin_daemon: Any, http: requests.Session
) -> None:
    failures = []
    for (method, template), operation in sorted(operations(spec).items()):
        allowed = documented_statuses(operation)
        # A fresh session per operation, so DELETE and restores do not disturb the others.
        session = create_session(http, daemon.url, steps=1)
        attempts = [
            ("no token", daemon, {}),
            ("a wrong token", daemon, {"Authorization": "Bearer not-a-token"}),
            ("the session's token", daemon, session.auth),
        ]
        if template == "/v1/sessions":
            attempts += [
                ("no token, admin daemon", admin_daemon, {}),
                ("a wrong token, admin daemon", admin_daemon, {"Authorization": "Bearer not-a-token"}),
                ("the admin token", admin_daemon, {"Authorization": f"Bearer {ADMIN_TOKEN}"}),
            ]
        for what, target, headers in attempts:
            response = request(http, method, target.url + concrete(template, session), headers)
            if is_no_route(response):
                failures.append(f"{method} {template} ({what}): the daemon has no such route")
            elif response.status_code not in allowed:
                failures.append(
                    f"{method} {template} ({what}): {response.status_code} is not among the documented "
                    f"{sorted(allowed)}: {response.text[:200]}"
                )
        http.delete(daemon.url + session.path, headers=session.auth)
    assert not failures, "\n".join(failures)


def test_session_routes_refuse_missing_and_foreign_tokens_as_documented(
    spec: dict[str, Any], daemon: Any, http: requests.Session
) -> None:
    mine = create_session(http, daemon.url)
    other = create_session(http, daemon.url, parameters=False)
    for (method, template), _ in sorted(operations(spec).items()):
        if not template.startswith("/v1/sessions/{id}"):
            continue
        url = daemon.url + concrete(template, mine)
        assert request(http, method, url, {}).status_code == 401, f"{method} {template} without a token"
        assert request(http, method, url, other.auth).status_code == 403, (
            f"{method} {template} with another session's token"
        )
        unknown = daemon.url + template.replace("{id}", "00000000-0000-0000-0000-000000000000")
        response = request(http, method, unknown, mine.auth)
        assert response.status_code == 404 and not is_no_route(response), (
            f"{method} {template} of an unknown session"
        )


# MARK: daemon -> spec


def source_paths() -> set[str]:
    """Every path the route files could register: group prefixes, relative and absolute paths,
    combined every way (over-generating is fine: the daemon decides which ones it answers)."""
    prefixes: set[str] = {""}
    pieces: set[str] = set()
    for file in SOURCES.rglob("*.swift"):
        text = file.read_text()
        prefixes.update(re.findall(r'\.group\(\s*"([^"]*)"', text))
        pieces.update(re.findall(r'\.(?:get|post|put|patch|delete|head|options|on)\(\s*"([^"]*)"', text))
        pieces.update(re.findall(r'RouterPath\(\s*"([^"]*)"', text))
        pieces.update(re.findall(r'\bpath:\s*"(/[^"]*)"', text))
    pieces.add("")
    paths = set()
    for prefix, piece in itertools.product(prefixes, pieces):
        path = "/" + "/".join(part.strip("/") for part in (prefix, piece) if part.strip("/"))
        paths.add(re.sub(r"/:([A-Za-z_]+)", r"/{\1}", path))
    return paths


def test_source_scan_finds_the_known_routes() -> None:
    """Guards the scan itself: if the route files change style, this fails before the scan goes blind."""
    paths = source_paths()
    for expected in [
        "/v1/sessions",
        "/v1/sessions/{id}",
        "/v1/sessions/{id}/step",
        "/healthz",
        "/openapi.yaml",
    ]:
        assert expected in paths, f"the source scan no longer finds {expected}; update source_paths()"


def template_of(spec: dict[str, Any], method: str, path: str) -> str | None:
    """The documented path template that matches `path` for `method` (`{id}` matches one segment)."""
    for documented_method, template in operations(spec):
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if documented_method == method and re.match(pattern, path):
            return template
    return None


def test_every_route_the_daemon_answers_is_documented(
    spec: dict[str, Any], daemon: Any, http: requests.Session
) -> None:
    candidates = sorted(set(spec["paths"]) | source_paths())
    probe = create_session(http, daemon.url)
    answered: set[tuple[str, str]] = set()
    missing = []
    for template in candidates:
        for method in METHODS:
            # DELETE gets a session of its own: the probe session must outlive the whole scan.
            session = create_session(http, daemon.url, parameters=False) if method == "DELETE" else probe
            path = concrete(template, session)
            response = request(http, method, daemon.url + path, session.auth)
            if is_no_route(response):
                continue
            documented = template_of(spec, method, path)
            if documented is None:
                missing.append(f"{method} {template} ({response.status_code})")
            else:
                answered.add((method, documented))
    assert not missing, "the daemon answers these, but openapi.yaml does not document them:\n" + "\n".join(
        missing
    )
    # And the other way round, on the same probe: everything documented was answered.
    assert set(operations(spec)) <= answered, sorted(set(operations(spec)) - answered)


def test_every_route_in_the_metrics_is_documented(
    spec: dict[str, Any], daemon: Any, http: requests.Session
) -> None:
    create_session(http, daemon.url, steps=1)  # at least some traffic on the session routes
    text = http.get(daemon.url + "/metrics").text
    routes = set(re.findall(r'http_route="([^"]*)"', text)) - {"unmatched", "NotFound"}
    assert routes, "no http_route labels in /metrics"
    documented = set(spec["paths"])
    assert routes <= documented, (
        f"routes in /metrics that openapi.yaml does not document: {sorted(routes - documented)}"
    )


@pytest.mark.parametrize("method", METHODS)
def test_unknown_paths_are_problem_404s(daemon: Any, http: requests.Session, method: str) -> None:
    response = request(http, method, daemon.url + "/v2/nothing-here", {})
    assert response.status_code == 404
    if method != "HEAD":
        assert response.headers["Content-Type"] == "application/problem+json"
        assert set(response.json()) == {"type", "title", "status", "detail"}
