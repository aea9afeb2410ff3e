"""Secret redaction: every error text is passed through :func:`redact` before it is logged or stored."""

from __future__ import annotations

from collections.abc import Iterable

REDACTED = "***"

# urllib.parse strips these from a URL before parsing, and http.client quotes a URL
# with repr() in its errors: a secret holding one is matched in every spelling.
_STRIPPED_BY_URLSPLIT = "\t\r\n"


def spellings(secret: str) -> set[str]:
    r"""``secret`` as it may appear in an error: as is, without tab/CR/LF, and repr-escaped.

    Examples
    --------
    >>> sorted(spellings("to\tken"))
    ['to\tken', 'to\\tken', 'token']
    """
    bare = secret.translate({ord(c): None for c in _STRIPPED_BY_URLSPLIT})
    forms = {secret, bare, repr(secret)[1:-1], repr(bare)[1:-1]}
    return {form for form in forms if form}


def redact(text: str, secrets: Iterable[str]) -> str:
    r"""``text`` with every secret replaced by ``***`` (longest first, so parts of a URL go too).

    Examples
    --------
    >>> redact("POST https://h/services/T0/tok failed", ["https://h/services/T0/tok", "/services/T0/tok"])
    'POST *** failed'
    >>> redact("URL can't contain control characters. '/s/to\\tk'", ["/s/to\tk"])
    "URL can't contain control characters. '***'"
    """
    forms = {form for secret in secrets if secret for form in spellings(secret)}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, REDACTED)
    return text
