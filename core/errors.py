"""Errors as RFC 9457 ``application/problem+json`` with a stable machine ``code``."""

from __future__ import annotations

from typing import Any

PROBLEM_TYPE = "application/problem+json"


class Problem(Exception):
    """Raise anywhere below a route to answer with a problem+json body.

    ``code`` is stable and documented; clients switch on it, never on ``title``.
    """

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        title: str | None = None,
        **extra: Any,
    ) -> None:
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        if title is not None:
            self.title = title
        self.detail = detail
        self.extra = extra
        super().__init__(detail or self.title)

    def __reduce__(self) -> tuple[Any, ...]:
        # Problems raised in a worker process (core.heavy) cross back whole, code included.
        return (_rebuild, (type(self), self.detail, self.status, self.code, self.title, self.extra))

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://consilium.invalid/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


def _rebuild(
    cls: type[Problem],
    detail: str | None,
    status: int,
    code: str,
    title: str,
    extra: dict[str, Any],
) -> Problem:
    return cls(detail, status=status, code=code, title=title, **extra)


class BadRequest(Problem):
    status, code, title = 400, "bad_request", "Bad request"


class ValidationFailed(Problem):
    status, code, title = 422, "validation_failed", "The request did not validate"


class Unauthorized(Problem):
    status, code, title = 401, "unauthenticated", "Authentication required"


class Forbidden(Problem):
    status, code, title = 403, "forbidden", "Not allowed"


class NotFound(Problem):
    status, code, title = 404, "not_found", "Not found"


class Conflict(Problem):
    status, code, title = 409, "conflict", "Conflict with the current state"


class Gone(Problem):
    status, code, title = 410, "gone", "No longer available"


class TooLarge(Problem):
    status, code, title = 413, "too_large", "Request body too large"


class UnsupportedMediaType(Problem):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class TooManyRequests(Problem):
    status, code, title = 429, "rate_limited", "Too many requests"


class Unavailable(Problem):
    status, code, title = 503, "unavailable", "Service unavailable"
