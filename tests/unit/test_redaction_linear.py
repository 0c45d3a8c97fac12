"""Redaction of tenant-controlled text is linear in its length and hides what it hid before.

Status messages quote tenants' text (a repository's content, a path, a URL in a manifest) and
are redacted for every list row, API document and live-update frame, so a redaction that is
quadratic on some input lets one app slow every reader. The complexity is tested without a
wall-clock threshold that could flake: a megabyte of each adversarial input is redacted in a
child process with a generous deadline - linear work takes well under a second, the quadratic
regexes these replaced took hours. What is redacted is tested against the regexes they replaced
(kept here as the reference) on random text, and on the URLs that must not leak. An OCI
registry's ``WWW-Authenticate`` and ``Link`` headers had the same kind of regex and are tested
the same way.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import textwrap

import pytest

from gitsync.argocd.application import _redact
from gitsync.source import redact, redact_url
from gitsync.source.oci import _AUTH_PARAM, _links

MEGABYTE = 1 << 20
DEADLINE_SECONDS = 60  # linear: well under 1 s; quadratic on 1 MB: hours

# The regexes redaction used before it was made linear: the reference for what is hidden.
_REFERENCE_URL_USERINFO = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<user>[^/\s:?#]*)(?P<password>:[^/\s?#]*)?@"
)
_REFERENCE_VALUE_SHOWN = re.compile(r"(,? got ).*$")


def _reference_redact_url(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        scheme = match["scheme"]
        if scheme.lower() in {"ssh", "git+ssh", "ssh+git"}:
            password = ":***" if match["password"] is not None else ""
            return f"{scheme}://{match['user']}{password}@"
        return f"{scheme}://***@"

    return _REFERENCE_URL_USERINFO.sub(replace, text)


def _random_texts(alphabet: list[str], count: int, seed: int) -> list[str]:
    chooser = random.Random(seed)
    return ["".join(chooser.choices(alphabet, k=chooser.randint(0, 40))) for _ in range(count)]


URL_ALPHABET = [*"aZs1+.-:/@?# \t\n\u00a0\u00e9", "://", "ssh", "https", "@h/"]


def test_redact_url_hides_what_the_regex_it_replaced_hid() -> None:
    for text in _random_texts(URL_ALPHABET, 20_000, seed=20):
        assert redact_url(text) == _reference_redact_url(text), text


GOT_ALPHABET = [*"a,'\n ", " got ", ", got ", "\n"]


def test_argocd_report_hides_the_value_the_regex_it_replaced_hid() -> None:
    for message in _random_texts(GOT_ALPHABET, 20_000, seed=20):
        expected = _REFERENCE_VALUE_SHOWN.sub(r"\1(value not shown)", message)
        assert _redact(message) == expected, message


LONG_WORD = "x" * 100_000


@pytest.mark.parametrize(
    ("text", "secret", "shown"),
    [
        ("https://alice:s3cr3t@git.example/r", "s3cr3t", "https://***@git.example/r"),
        ("https://ghp_tok3n@git.example/r", "ghp_tok3n", "https://***@git.example/r"),
        ("git://tok3n@git.example/r", "tok3n", "git://***@git.example/r"),
        ("ssh://git:s3cr3t@git.example/r", "s3cr3t", "ssh://git:***@git.example/r"),
        ("git+ssh://git:s3cr3t@git.example/r", "s3cr3t", "git+ssh://git:***@git.example/r"),
        ("https://u:p@ss:w0rd@git.example/r", "ss:w0rd", "https://***@git.example/r"),
        (
            f"{LONG_WORD} fetch https://alice:s3cr3t@git.example/r failed",
            "s3cr3t",
            f"{LONG_WORD} fetch https://***@git.example/r failed",
        ),
        # glued to a long word: the whole word is taken for the scheme, the userinfo still goes
        (f"{LONG_WORD}https://tok3n@h/r", "tok3n", f"{LONG_WORD}https://***@h/r"),
        (
            "a://b:c://d https://u:s3cr3t@h/r and http://tok3n@h2/",
            "s3cr3t",
            "a://b:c://d https://***@h/r and http://***@h2/",
        ),
        (f"{'://' * 1000}https://tok3n@h/r", "tok3n", f"{'://' * 1000}https://***@h/r"),
    ],
)
def test_userinfo_never_leaks_whatever_surrounds_the_url(
    text: str, secret: str, shown: str
) -> None:
    assert redact_url(text) == shown
    assert secret not in redact(text)


ADVERSARIAL_URL_TEXTS = {
    "long-word": "'a' * MEGABYTE",
    "long-scheme-then-userinfo-without-at": "'a' * (MEGABYTE // 2) + '://' + 'b' * (MEGABYTE // 2)",
    "many-separators": "'a://' * (MEGABYTE // 4)",
    "many-at-signs": "'a://' + '@' * MEGABYTE",
    "many-colons-and-at-signs": "'a://b' + ':@' * (MEGABYTE // 2) + '/'",
    "words-with-separators": "('a' * 1000 + '://' + 'b' * 1000 + ' ') * (MEGABYTE // 2004)",
}


def _runs_within_the_deadline(program: str) -> None:
    try:
        subprocess.run(
            [sys.executable, "-c", textwrap.dedent(program)],
            check=True,
            timeout=DEADLINE_SECONDS,
            capture_output=True,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"1 MB was not processed in {DEADLINE_SECONDS} s: super-linear")


@pytest.mark.parametrize("shape", sorted(ADVERSARIAL_URL_TEXTS))
def test_redact_url_of_a_megabyte_of_adversarial_text_is_linear(shape: str) -> None:
    _runs_within_the_deadline(f"""
        from gitsync.source import redact_url
        MEGABYTE = {MEGABYTE}
        redact_url({ADVERSARIAL_URL_TEXTS[shape]})
        """)


def test_argocd_report_redaction_of_a_megabyte_of_adversarial_text_is_linear() -> None:
    _runs_within_the_deadline(f"""
        from gitsync.argocd.application import _redact
        _redact(" got " * ({MEGABYTE} // 5) + "\\nx")
        """)


# An OCI registry's headers are parsed with regexes too: the ones they replaced, as reference.
_REFERENCE_AUTH_PARAM = re.compile(r'([A-Za-z][\w-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')
_REFERENCE_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]*)*)")
HEADER_ALPHABET = [*'aZ1_-=,;"\\ \t<>\u00e9', "rel", "next", "realm"]


def test_oci_challenge_parameters_are_those_the_regex_it_replaced_found() -> None:
    for header in _random_texts(HEADER_ALPHABET, 20_000, seed=20):
        assert _AUTH_PARAM.findall(header) == _REFERENCE_AUTH_PARAM.findall(header), header


def test_oci_links_are_those_the_regex_it_replaced_found() -> None:
    for header in _random_texts(HEADER_ALPHABET, 20_000, seed=20):
        assert _links(header) == _REFERENCE_LINK.findall(header), header


ADVERSARIAL_HEADERS = {
    "challenge-long-word": "parse_challenge('Bearer ' + 'a' * MEGABYTE)",
    "challenge-many-words": "parse_challenge('Bearer ' + ('a' * 1000 + ' ') * (MEGABYTE // 1001))",
    "challenge-unterminated-quotes": "parse_challenge('Bearer ' + 'a=\"\\\\' * (MEGABYTE // 4))",
    "link-many-opening-brackets": "next_page('<' * MEGABYTE)",
    "link-many-parameters": "next_page('<x>' + '; a' * (MEGABYTE // 3))",
}


@pytest.mark.parametrize("shape", sorted(ADVERSARIAL_HEADERS))
def test_oci_header_parsing_of_a_megabyte_of_adversarial_text_is_linear(shape: str) -> None:
    _runs_within_the_deadline(f"""
        from gitsync.source.oci import next_page, parse_challenge
        MEGABYTE = {MEGABYTE}
        {ADVERSARIAL_HEADERS[shape]}
        """)
