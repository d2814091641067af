"""The runner endpoints' work is bounded whatever is asked: a resolved template's size and number
of names, one audit event per refused request, ended runner sessions refused before any per-key
work and audited at most once a minute, and a compiled-query cache whose size does not depend on
the requests."""

from __future__ import annotations

import json
import re
import tracemalloc

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from secrets_app.models import AuditEvent
from secrets_app.selectors import runner as runner_selectors
from secrets_app.services.runner import REFUSED_KEYS_LISTED, TEMPLATE_MAX_BYTES
from secrets_app.services.runs import finish_execution
from secrets_app.services.secrets import create_secret, import_secrets
from secrets_app.validators import TEMPLATE_MAX_NAMES
from tests.conftest import error_of
from tests.test_runners import events, launch, runner_client

pytestmark = pytest.mark.django_db

BIG_VALUE = "B" * (64 * 1024)


@pytest.fixture
def big(alice):
    """One 64 KiB secret in alice's personal workspace."""
    return create_secret(actor=alice, workspace=alice.personal_workspace, key="BIG", value=BIG_VALUE)


def test_a_template_that_would_fill_in_to_hundreds_of_megabytes_is_refused_without_building_it(alice_api, big):
    template = json.dumps({"x": "${workflow.secrets.BIG}" * 5000})  # 115 KB that would resolve to 328 MB
    tracemalloc.start()
    with CaptureQueriesContext(connection) as queries:
        response = alice_api.post("/api/v1/runner/resolve/", raw=template)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert error_of(response) == (413, "resolved_too_large")
    assert "1,024 KiB" in response.json()["error"]["message"]
    assert BIG_VALUE[:100] not in response.content.decode()
    assert peak < 8 * 1024 * 1024, f"peak {peak:,} bytes"
    fetched_values = [q["sql"] for q in queries if re.search(r'(?<!LENGTH\()"secrets_app_secret"\."value"', q["sql"])]
    assert fetched_values == []  # sizes were enough to refuse: no value was fetched
    (denied,) = events(AuditEvent.Action.SECRET_READ_DENIED)
    assert (denied.secret_key, denied.detail["reason"]) == ("BIG", "resolved_too_large")
    assert not events(AuditEvent.Action.SECRET_READ)


def test_a_template_within_the_limit_is_resolved(alice_api, big):
    response = alice_api.post("/api/v1/runner/resolve/", {"x": "${workflow.secrets.BIG}" * 15})
    assert response.status_code == 200
    assert response.json()["document"] == {"x": BIG_VALUE * 15}
    assert len(json.dumps(response.json()["document"])) <= TEMPLATE_MAX_BYTES


def test_the_size_that_counts_is_the_escaped_one_checked_after_the_values_are_opened(alice, alice_api):
    # 32,768 "é" are 64 KiB as stored, but 196,608 characters as JSON escapes: six of them fit the
    # check made from the stored sizes, and not the exact one.
    create_secret(actor=alice, workspace=alice.personal_workspace, key="ACCENTS", value="é" * 32768)
    response = alice_api.post("/api/v1/runner/resolve/", {f"v{n}": "${workflow.secrets.ACCENTS}" for n in range(6)})
    assert error_of(response) == (413, "resolved_too_large")
    assert alice_api.post("/api/v1/runner/resolve/", {"v": "${workflow.secrets.ACCENTS}"}).status_code == 200


def test_a_template_naming_more_than_1000_secrets_is_a_400_with_one_audit_event(alice_api, alice):
    template = {f"k{n}": f"${{workflow.secrets.UNKNOWN_{n:05}}}" for n in range(20_000)}
    response = alice_api.post("/api/v1/runner/resolve/", template)
    assert error_of(response) == (400, "too_many_placeholders")
    assert f"at most {TEMPLATE_MAX_NAMES:,}" in response.json()["error"]["message"]
    (denied,) = events(AuditEvent.Action.SECRET_READ_DENIED)
    assert denied.detail["reason"] == "too_many_placeholders" and denied.detail["refused_count"] == 20_000
    assert len(denied.detail["refused"]) == REFUSED_KEYS_LISTED


def test_a_request_naming_a_thousand_unknown_keys_is_one_audit_event(alice_api, alice):
    for _ in range(10):
        template = {f"k{n}": f"${{workflow.secrets.NOPE_{n:04}}}" for n in range(TEMPLATE_MAX_NAMES)}
        assert error_of(alice_api.post("/api/v1/runner/resolve/", template)) == (404, "unknown_secrets")
    denied = events(AuditEvent.Action.SECRET_READ_DENIED)
    assert len(denied) == 10
    assert denied[0].detail["refused_count"] == TEMPLATE_MAX_NAMES
    assert denied[0].detail["refused"]["NOPE_0000"] == "secret_not_found"


@pytest.fixture
def ended_runner(alice, team):
    create_secret(actor=alice, workspace=team, key="API_KEY", value="v")
    from secrets_app.services.runs import register_workflow

    workflow = register_workflow(actor=alice, workspace=team, name="w", definition={"t": "${workflow.secrets.API_KEY}"})
    execution, session_key = launch(alice, team, workflow)
    runner = runner_client(session_key)  # it takes its CSRF token while the session works
    finish_execution(actor=alice, execution=execution)
    return runner, session_key


def again(runner, session_key: str):
    """The runner as a script would send it: the same session cookie every time (Django's answer
    to an ended session clears the test client's copy)."""
    runner.client.cookies[settings.SESSION_COOKIE_NAME] = session_key
    return runner


def test_an_ended_runner_session_is_refused_before_any_per_key_work(ended_runner):
    runner, _ = ended_runner
    template = {f"k{n}": f"${{workflow.secrets.K_{n:04}}}" for n in range(TEMPLATE_MAX_NAMES)}
    with CaptureQueriesContext(connection) as queries:
        response = runner.post("/api/v1/runner/resolve/", template)
    assert error_of(response) == (401, "execution_finished")
    assert not any("secrets_app_secret" in query["sql"] for query in queries)


def test_an_ended_runner_session_is_audited_at_most_once_a_minute(ended_runner):
    runner, session_key = ended_runner
    for key in ["API_KEY", "OTHER", "THIRD"] * 10:
        response = again(runner, session_key).get(f"/api/v1/runner/secrets/{key}/")
        assert error_of(response) == (401, "execution_finished")
    for _ in range(10):
        response = again(runner, session_key).post("/api/v1/runner/resolve/", {"t": "x"})
        assert error_of(response) == (401, "execution_finished")
    (denied,) = events(AuditEvent.Action.SECRET_READ_DENIED)
    assert (denied.secret_key, denied.detail["reason"]) == ("API_KEY", "execution_finished")


def test_the_compiled_query_cache_does_not_grow_with_the_number_of_keys(alice, alice_api):
    import_secrets(
        actor=alice, workspace=alice.personal_workspace, entries=[(f"K{n:04}", f"v{n}", []) for n in range(1000)]
    )
    runner_selectors._runner_read_query._compiled.clear()
    for count in [1, 2, 3, 5, 7, 9, 17, 31, 33, 63, 100, 127, 129, 255, 300, 511, 513, 700, 999, 1000]:
        template = {f"k{n}": f"${{workflow.secrets.K{n:04}}}" for n in range(count)}
        assert alice_api.post("/api/v1/runner/resolve/", template).status_code == 200
    assert alice_api.get("/api/v1/runner/secrets/K0001/").status_code == 200
    shapes = runner_selectors._runner_read_query._compiled
    assert len(shapes) <= 11 + 1  # one per power of two up to 1,024 for templates; one for a single read


# The forms to mask are bounded too: a JSON secret of thousands of short leaves has far more forms
# than its own size (3.7 MB for one 64 KiB value before the budget).


def leafy_value(seed: int) -> str:
    leaves, size = [], 2
    while size < 60 * 1024:
        leaf = f"é'/{seed}-{len(leaves):05}"
        leaves.append(leaf)
        size += len(json.dumps(leaf, ensure_ascii=False).encode()) + 2
    return json.dumps(leaves, ensure_ascii=False)


def test_the_forms_of_a_value_of_thousands_of_leaves_stay_within_their_budget(alice, alice_api):
    from secrets_app.redaction import REDACT_MAX_CHARS, redaction_forms

    value = leafy_value(0)
    create_secret(actor=alice, workspace=alice.personal_workspace, key="LEAFY", value=value)
    answer = alice_api.get("/api/v1/runner/secrets/LEAFY/")
    assert answer.status_code == 200
    redact = answer.json()["redact"]
    assert sum(len(json.dumps(form)) for form in redact) <= REDACT_MAX_CHARS
    # The value, its own forms (here its base64) and the first of its leaves are all masked.
    assert value in redact and redaction_forms(value)[0] == max(redact, key=len)
    assert "é'/0-00000" in redact
    assert len(answer.content) < len(json.dumps(value)) + REDACT_MAX_CHARS + 1024


def test_a_resolve_of_leafy_values_answers_within_the_document_and_form_limits(alice, alice_api):
    from secrets_app.redaction import REDACT_MAX_CHARS

    for n in range(8):
        create_secret(actor=alice, workspace=alice.personal_workspace, key=f"AMP{n}", value=leafy_value(n))
    template = {f"k{n}": f"${{workflow.secrets.AMP{n}}}" for n in range(8)}
    answer = alice_api.post("/api/v1/runner/resolve/", template)
    assert answer.status_code == 200
    # Eight values of 60 KiB (their JSON escapes included) and at most 512 KiB of forms: 21.7 MB before.
    assert len(answer.content) < TEMPLATE_MAX_BYTES + REDACT_MAX_CHARS + 4096
    assert all(answer.json()["document"][f"k{n}"] in answer.json()["redact"] for n in range(8))


def test_a_document_naming_no_secret_must_fit_too(alice_api):
    # 900 KB as sent; 1.2 MB as the answer writes it.
    answer = alice_api.post("/api/v1/runner/resolve/", raw=json.dumps([{}] * 300_000, separators=(",", ":")))
    assert error_of(answer) == (413, "resolved_too_large")
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SECRET_READ_DENIED).exists()
    assert alice_api.post("/api/v1/runner/resolve/", [{}] * 1000).json()["document"] == [{}] * 1000
