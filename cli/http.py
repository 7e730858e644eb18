"""The CLI's one way to the HTTP API: the caller's own key, a 503 tried again where
resending is safe, and a failure said in one line (`ConsoleError`)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

API_URL_ENV = "TICKETFLOW_API_URL"
API_KEY_ENV = "TICKETFLOW_API_KEY"
TIMEOUT_S = 30.0
# A 503 means Temporal did not answer in time; the action carries its id, so sending it
# again applies it once. A few tries cover a worker restart.
RETRIES_ON_503 = 3


class ConsoleError(Exception):
    """What went wrong, in one line for the terminal; `status` is the API's answer, None
    when none came (the API was not reached)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def worth_resending(self) -> bool:
        """Whether the same request sent again may go through: not when the API refused it
        (a 4xx says the key, the ticket or the request is wrong), only when it failed or no
        answer came, and the first one may or may not have been applied."""
        return self.status is None or self.status >= 500


@dataclass(frozen=True)
class Api:
    url: str
    key: str

    @classmethod
    def from_args(cls, args: argparse.Namespace, default_url: Callable[[], str]) -> Api:
        url = args.url or os.environ.get(API_URL_ENV) or default_url()
        key = args.api_key or os.environ.get(API_KEY_ENV)
        if not key:
            raise ConsoleError(
                f"no API key: set {API_KEY_ENV} or pass --api-key (`make dev` prints one per role)"
            )
        return cls(url=url.rstrip("/"), key=key)

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Sequence[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        retries: int = 0,
        as_text: bool = False,
        content: bytes | None = None,
    ) -> Any:
        """One call; a 503 is tried again `retries` times after its Retry-After (only for
        requests that are safe to resend: they carry their action id or reply id)."""
        import time

        import httpx  # here, not at the top: `ticketflow --help` stays quick

        for attempt in range(retries + 1):
            try:
                response = httpx.request(
                    method,
                    self.url + path,
                    json=body,
                    content=content,
                    params=list(params or []),
                    headers={"Authorization": f"Bearer {self.key}", **(headers or {})},
                    timeout=TIMEOUT_S,
                )
            except httpx.HTTPError as error:
                raise ConsoleError(
                    f"cannot reach the API at {self.url} ({error}); is `make dev` or "
                    "`ticketflow api` running?"
                ) from None
            if response.status_code == 503 and attempt < retries:
                time.sleep(min(float(response.headers.get("Retry-After", "1")), 30.0))
                continue
            break
        if response.status_code >= 400:
            raise ConsoleError(_describe_failure(response), response.status_code)
        return response.text if as_text else response.json()


def _describe_failure(response: httpx.Response) -> str:
    try:
        problem = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    detail = problem.get("detail", "")
    if isinstance(detail, list):
        detail = "; ".join(
            f"{'.'.join(str(p) for p in item.get('loc', [])[1:]) or 'body'}: {item.get('msg')}"
            for item in detail
        )
    hint = ""
    if response.status_code == 503 and response.headers.get("Retry-After"):
        hint = f" (retry in {response.headers['Retry-After']} s)"
    return f"{response.status_code} {problem.get('code', 'error')}: {detail}{hint}"
