"""The runner client's redaction: the forms of a value, `mask`, and the logging filter (no console needed)."""

from __future__ import annotations

import http.server
import io
import json
import logging
import shlex
import threading

import pytest

from secrets_app import client, redaction
from secrets_app.client import SecretMaskingFilter, install_log_masking, mask, redaction_forms
from secrets_app.redaction import MIN_MASKED_FORM_LENGTH

METACHARACTERS = "a.b*c+(d)[e]$^|\\"
SERVICE_ACCOUNT = json.dumps(
    {
        "type": "service_account",
        "port": 5432,
        "user": "svc",
        "auth": {
            "password": "hunter2-pass",
            "keys": ["key-one", {"pem": "-----BEGIN KEY-----\nMIIBVQIBADAN\n-----END KEY-----\n"}],
        },
    },
    indent=2,
)


@pytest.fixture(autouse=True)
def nothing_masked_yet(monkeypatch):
    """Each test starts with a process registry of its own, with nothing in it."""
    monkeypatch.setattr(redaction, "_masked_forms", redaction.MaskedForms())


def obtain(monkeypatch, value: str, key: str = "TOKEN") -> str:
    """The process obtains `value` the way a runner's local context hands it over."""
    monkeypatch.setenv("CONSOLE_USE_LOCAL_SECRETS", "true")
    monkeypatch.setenv(f"CONSOLE__SECRETS__{key}", value)
    return client.get_secret(key)


# redaction_forms


def test_a_value_comes_with_its_base64_url_and_json_forms():
    forms = redaction_forms("k>>?~ é")
    assert set(forms) == {
        "k>>?~ é",
        "az4+P34gw6k=",  # base64, standard alphabet
        "az4+P34gw6k",
        "az4-P34gw6k=",  # base64, URL-safe alphabet
        "az4-P34gw6k",
        "k%3E%3E%3F~%20%C3%A9",  # quote(value, safe="")
        "k%3E%3E%3F~+%C3%A9",  # quote_plus
        "k>>?~ \\u00e9",  # inside a JSON string, ensure_ascii (with ensure_ascii=False it is the value)
        "k>>?~ \\xe9",  # ascii(), %a
        "k>>?~ \\xc3\\xa9",  # its UTF-8 bytes as Python shows them
        "'k>>?~ é'",  # shlex.quote(), and bash's `set -x`
    }


def test_each_line_of_a_multi_line_value_is_a_form_whatever_the_line_break():
    forms = redaction_forms("first-line\r\nsecond-line\rthird-line\n  indented line  \n}\n")
    assert {"first-line", "second-line", "third-line", "  indented line  ", "indented line"} <= set(forms)
    assert "}" not in forms and "" not in forms
    assert not [form for form in forms if form.endswith("\r") or form.startswith("\n")]
    assert "first-line\\r\\nsecond-line\\rthird-line\\n  indented line  \\n}\\n" in forms  # JSON-escaped


def test_every_leaf_string_of_a_json_document_comes_with_its_own_forms():
    forms = set(redaction_forms(SERVICE_ACCOUNT))
    assert {"service_account", "hunter2-pass", "key-one"} <= forms
    # A leaf's own forms: its base64, its lines, and the JSON-escaped form it has inside the document.
    assert {"aHVudGVyMi1wYXNz", "-----BEGIN KEY-----", "MIIBVQIBADAN", "-----END KEY-----"} <= forms
    assert "-----BEGIN KEY-----\\nMIIBVQIBADAN\\n-----END KEY-----\\n" in forms
    # Short leaves, numbers and dictionary keys are not leaf strings worth masking.
    assert "svc" not in forms and "5432" not in forms and "password" not in forms


def test_a_json_string_inside_a_leaf_is_searched_too():
    inner = json.dumps({"token": "nested-token-value"})
    assert "nested-token-value" in redaction_forms(json.dumps(["outer-value", inner]))


@pytest.mark.parametrize(
    "value",
    [
        "{not json: 'at all'}",
        "[unterminated",
        '"a JSON string, not a document"',
        "[" * 100_000,  # deeper than the JSON decoder's recursion limit
        "\ud800lone-surrogate\udcff",
        "\x00\x1f control characters \u2028",
    ],
)
def test_any_string_yields_its_forms_without_raising(value):
    assert value in redaction_forms(value)


def test_a_value_that_looks_like_json_but_is_not_has_only_its_plain_forms():
    value = "{not json: 'at all'}"
    assert "at all" not in redaction_forms(value) and "not json: 'at all'" not in redaction_forms(value)
    assert redaction_forms(value)[-1] == value


def test_regex_metacharacters_and_unicode_are_kept_as_they_are():
    assert METACHARACTERS in redaction_forms(METACHARACTERS)
    assert "a.b*c+(d)[e]$^|\\\\" in redaction_forms(METACHARACTERS)  # JSON-escaped backslash
    forms = redaction_forms("clé-secrète-日本")
    assert {
        "clé-secrète-日本",
        "cl\\u00e9-secr\\u00e8te-\\u65e5\\u672c",
        "cl%C3%A9-secr%C3%A8te-%E6%97%A5%E6%9C%AC",
    } <= set(forms)


def test_a_short_value_is_masked_but_its_short_forms_are_not():
    assert redaction_forms("ab") == ["YWI=", "ab"]  # the value whatever its length; "YWI" is too short
    derived = set(redaction_forms("{\n}\n")) - {"{\n}\n"}
    assert derived and all(len(form.strip()) >= MIN_MASKED_FORM_LENGTH for form in derived)
    assert not {"{", "}", "{\n", "}\n"} & derived


def test_an_empty_or_blank_value_has_nothing_to_mask():
    assert redaction_forms("") == []
    assert redaction_forms(" \n\t ") == []


def test_forms_are_unique_longest_first_and_cover_every_value_given():
    forms = redaction_forms(SERVICE_ACCOUNT, "pg-pass-1234")
    assert len(forms) == len(set(forms))
    assert [len(form) for form in forms] == sorted((len(form) for form in forms), reverse=True)
    assert set(forms) == set(redaction_forms(SERVICE_ACCOUNT)) | set(redaction_forms("pg-pass-1234"))


# mask


def test_every_form_of_an_obtained_value_is_masked_in_a_log_line(monkeypatch):
    value = obtain(monkeypatch, "line-one/é x\nline+two\n")
    line = (
        f"raw={value!s} json={json.dumps(value)} b64=bGluZS1vbmUvw6kgeApsaW5lK3R3bwo= "
        "url=line-one%2F%C3%A9%20x%0Aline%2Btwo%0A plus=line-one%2F%C3%A9+x%0Aline%2Btwo%0A "
        "first=line-one/é x second=line+two unpadded=bGluZS1vbmUvw6kgeApsaW5lK3R3bwo."
    )
    assert mask(line) == 'raw=*** json="***" b64=*** url=*** plus=*** first=*** second=*** unpadded=***.'


def test_mask_leaves_text_without_a_value_untouched(monkeypatch):
    assert mask("nothing obtained yet: s3cr3t") == "nothing obtained yet: s3cr3t"
    obtain(monkeypatch, "s3cr3t-value")
    text = "GET /api/v1/runner/secrets/TOKEN/ 200 (s3cr3t-valu, 3cr3t-value) ünïcode ***"
    assert mask(text) == text


def test_regex_metacharacters_in_a_value_match_only_themselves(monkeypatch):
    obtain(monkeypatch, METACHARACTERS)
    assert mask(f"x {METACHARACTERS} y") == "x *** y"
    lookalikes = "aXbbbbcc+(d)[e]$^|\\ abc(d)e a.b*c+(d)[e]$^|"
    assert mask(lookalikes) == lookalikes


def test_overlapping_values_are_masked_as_one_span_leaving_no_tail(monkeypatch):
    obtain(monkeypatch, "abcdef-1234", key="FIRST")
    obtain(monkeypatch, "1234-ghijkl", key="SECOND")
    assert mask("<abcdef-1234-ghijkl>") == "<***>"
    obtain(monkeypatch, "token-1", key="SHORT")
    obtain(monkeypatch, "token-12345", key="LONG")
    assert mask("token-12345 token-1 token-123") == "*** *** ***23"


def test_values_from_resolve_in_the_local_context_are_masked(monkeypatch):
    monkeypatch.setenv("CONSOLE_USE_LOCAL_SECRETS", "true")
    monkeypatch.setenv("CONSOLE__SECRETS__DB_PASSWORD", "pg-pass-9876")
    resolved = client.resolve({"dsn": "postgres://app:${workflow.secrets.DB_PASSWORD}@db/app"})
    assert mask(resolved["dsn"]) == "postgres://app:***@db/app"


def test_values_obtained_from_many_threads_are_all_masked(monkeypatch):
    values = [f"thread-secret-{number:03}" for number in range(40)]
    masked_at_once = []

    def obtain_and_mask(value: str) -> None:
        redaction.remember(redaction_forms(value))
        masked_at_once.append(mask(value))

    threads = [threading.Thread(target=obtain_and_mask, args=(value,)) for value in values]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert masked_at_once == ["***"] * len(values)
    assert mask(" ".join(values)) == " ".join(["***"] * len(values))


# The logging filter


@pytest.fixture
def runner_log():
    """A logger with one handler writing to a string, masking installed on it; yields (logger, output)."""
    output = io.StringIO()
    logger = logging.getLogger("tests.runner_log")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = logging.StreamHandler(output)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logger.addHandler(handler)
    install_log_masking(logger)
    yield logger, output
    logger.removeHandler(handler)
    logger.propagate = True


def test_the_filter_masks_a_message_after_applying_its_arguments(monkeypatch, runner_log):
    logger, output = runner_log
    value = obtain(monkeypatch, "multi\nline-token")
    logger.info("token %s, as JSON %s", value, json.dumps({"t": value}))
    logger.warning("by name: %(token)s", {"token": value})
    logging.getLogger("tests.runner_log.child").error("child logger: %s", value.splitlines()[1])
    assert output.getvalue().splitlines() == [
        'INFO tests.runner_log token ***, as JSON {"t": "***"}',
        "WARNING tests.runner_log by name: ***",
        "ERROR tests.runner_log.child child logger: ***",
    ]


def test_the_filter_masks_the_traceback_of_a_logged_exception(monkeypatch, runner_log):
    logger, output = runner_log
    value = obtain(monkeypatch, '{"password": "hunter2-pass"}')
    try:
        raise ValueError(f"could not use {json.loads(value)['password']} from {value}")
    except ValueError:
        logger.exception("step failed")
    text = output.getvalue()
    assert "Traceback (most recent call last)" in text
    assert "ValueError: could not use *** from ***" in text
    assert "hunter2" not in text


def test_the_filter_masks_stack_info_and_clears_the_arguments(monkeypatch):
    value = obtain(monkeypatch, "stack-secret-42")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "got %s", (value,), None, sinfo=f"frame {value}")
    assert SecretMaskingFilter().filter(record) is True
    assert (record.msg, record.args, record.stack_info) == ("got ***", None, "frame ***")


def test_arguments_that_do_not_fit_the_format_are_masked_not_printed_raw(monkeypatch, runner_log, capsys):
    logger, output = runner_log
    value = obtain(monkeypatch, "mismatch-secret")
    logger.info("two %s %s", value)
    assert output.getvalue() == "INFO tests.runner_log two %s %s ***\n"
    assert value not in capsys.readouterr().err


def test_installing_needs_a_handler_and_is_done_once_per_handler():
    bare = logging.getLogger("tests.no_handlers")
    with pytest.raises(ValueError, match="no handlers"):
        install_log_masking(bare)
    handler = logging.NullHandler()
    bare.addHandler(handler)
    try:
        install_log_masking(bare)
        install_log_masking(bare)
        assert [type(f) for f in handler.filters] == [SecretMaskingFilter]
    finally:
        bare.removeHandler(handler)


BOTH_QUOTES = "pa'ss\"word-7Qz/ü"


def test_a_value_holding_both_quotes_comes_with_its_python_json_and_shell_escapes():
    forms = set(redaction_forms(BOTH_QUOTES))
    assert {
        "pa\\'ss\"word-7Qz/ü",  # repr(): the enclosing quote is escaped
        "pa\\'ss\"word-7Qz/\\xfc",  # ascii()
        "pa\\'ss\"word-7Qz/\\xc3\\xbc",  # bytes
        "pa'ss\\\"word-7Qz/\\u00fc",  # JSON
        "pa'ss\\\"word-7Qz\\/\\u00fc",  # JSON with "/" escaped
        "'pa'\"'\"'ss\"word-7Qz/ü'",  # shlex.quote()
        "'pa'\\''ss\"word-7Qz/ü'",  # bash `set -x`
    } <= forms


@pytest.mark.parametrize(
    "log",
    [
        lambda logger, value: logger.info("token=%r", value),
        lambda logger, value: logger.info("settings %s", {"token": value}),
        lambda logger, value: logger.info("%s", [value, value.encode()]),
        lambda logger, value: logger.info("ascii %a", value),
        lambda logger, value: logger.info("as JSON %s", json.dumps({"token": value})),
        lambda logger, value: logger.info("+ curl -H %s", shlex.quote(value)),
    ],
    ids=["%r", "dict", "list with bytes", "%a", "JSON", "shell"],
)
def test_a_value_holding_both_quotes_is_masked_however_it_is_logged(monkeypatch, log):
    value = obtain(monkeypatch, BOTH_QUOTES)
    stream = io.StringIO()
    logger = logging.getLogger("test.masking.quotes")
    handler = logging.StreamHandler(stream)
    handler.addFilter(SecretMaskingFilter())
    logger.addHandler(handler)
    try:
        log(logger, value)
    finally:
        logger.removeHandler(handler)
    logged = stream.getvalue()
    assert "***" in logged and "word-7Qz" not in logged


def test_a_value_holding_both_quotes_is_masked_in_an_exception_message(monkeypatch):
    value = obtain(monkeypatch, BOTH_QUOTES)
    stream = io.StringIO()
    logger = logging.getLogger("test.masking.exception")
    handler = logging.StreamHandler(stream)
    handler.addFilter(SecretMaskingFilter())
    logger.addHandler(handler)
    try:
        try:
            {}[value]
        except KeyError:
            logger.exception("lookup failed")
    finally:
        logger.removeHandler(handler)
    assert "KeyError: '***'" in stream.getvalue()
    assert "word" not in stream.getvalue()


# Credentials never leave for another address


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A server that answers every request with `answer` and records the headers it was sent."""

    answer: tuple[int, dict[str, str]] = (200, {})
    received: list[dict[str, str]]

    def do_GET(self) -> None:
        self.received.append(dict(self.headers))
        status, headers = self.answer
        self.send_response(status)
        for name, value in {**headers, "Content-Type": "application/json", "Content-Length": "2"}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(b"{}")

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


def _serve(answer: tuple[int, dict[str, str]]) -> tuple[http.server.HTTPServer, list[dict[str, str]]]:
    received: list[dict[str, str]] = []
    handler = type("Handler", (_Recorder,), {"answer": answer, "received": received})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_the_client_never_follows_a_redirect_with_the_session(status):
    elsewhere, seen_elsewhere = _serve((200, {}))
    console, _ = _serve((status, {"Location": f"http://127.0.0.1:{elsewhere.server_port}/steal"}))
    try:
        runner = client.ConsoleClient(f"http://127.0.0.1:{console.server_port}", "the-runner-session")
        with pytest.raises(client.ClientError) as refused:
            runner.get_secret("API_KEY")
    finally:
        console.shutdown()
        elsewhere.shutdown()
    assert refused.value.code == "redirect_refused" and refused.value.status == status
    assert "does not follow redirects" in str(refused.value)
    assert seen_elsewhere == []
    assert "the-runner-session" not in str(refused.value)
