"""HTTP client for segd's read-key API: membership checks and the change feed."""

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Union

from .errors import FellBehind, SegdError
from .retry import RETRYABLE_STATUSES, RetryPolicy

SegmentRef = Union[int, str]

# segd's own bounds (see the README's Limits table).
MAX_BULK_PAIRS = 100_000
MAX_WAIT_MS = 25_000
# SSE keep-alives arrive every 15 s; a read silent for longer means a dead connection.
SSE_READ_TIMEOUT_S = 45.0


@dataclass(frozen=True)
class Change:
    """One membership change from the change log."""

    sequence: int
    time_ms: int
    segment_id: int
    segment_version: int
    profile: str
    kind: str  # "entered" or "exited"
    cause: Any

    @staticmethod
    def from_json(value: Dict[str, Any]) -> "Change":
        return Change(
            sequence=int(value["sequence"]),
            time_ms=int(value["time_ms"]),
            segment_id=int(value["segment_id"]),
            segment_version=int(value["segment_version"]),
            profile=str(value["profile"]),
            kind=str(value["kind"]),
            cause=value.get("cause"),
        )


@dataclass(frozen=True)
class ChangesPage:
    changes: List[Change]
    head: int
    next_after: int


class Client:
    """A segd client. ``key`` is a read key (or admin key), sent as ``Bearer``.

    Every request is retried on connection errors and on 429/502/503/504 (honouring
    ``Retry-After``) according to ``retry``; other errors raise :class:`SegdError` at once.
    """

    def __init__(
        self,
        base_url: str,
        key: Optional[str] = None,
        timeout_s: float = 10.0,
        retry: Optional[RetryPolicy] = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()

    # -- transport -------------------------------------------------------------------

    def _url(self, path: str, query: Optional[Dict[str, Any]] = None) -> str:
        url = self.base_url + path
        if query:
            pairs = {name: value for name, value in query.items() if value is not None}
            if pairs:
                url += "?" + urllib.parse.urlencode(pairs)
        return url

    def _headers(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "segd-client-python/0.1"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        headers.update(extra or {})
        return headers

    @staticmethod
    def _error(status: int, raw: bytes) -> SegdError:
        try:
            error = json.loads(raw.decode("utf-8"))["error"]
            code, message = error.get("code"), error.get("message", "")
        except (ValueError, KeyError, TypeError, AttributeError):
            error, code, message = {}, None, raw[:200].decode("utf-8", "replace")
        if code == "fell_behind":
            return FellBehind(
                message,
                requested_after=int(error.get("requested_after", 0)),
                oldest_available=int(error.get("oldest_available", 0)),
                status=status,
            )
        return SegdError(f"segd answered {status} {code}: {message}", status, code, error)

    def _open(self, request: urllib.request.Request, timeout_s: float):
        """Opens ``request`` with retries; returns the open response (2xx)."""
        attempt = 0
        while True:
            attempt += 1
            retry_after_s = None
            try:
                return urllib.request.urlopen(request, timeout=timeout_s)
            except urllib.error.HTTPError as failure:
                raw = failure.read()
                failure.close()
                if failure.code not in RETRYABLE_STATUSES:
                    raise self._error(failure.code, raw) from None
                last = self._error(failure.code, raw)
                header = failure.headers.get("Retry-After") if failure.headers else None
                if header and header.strip().isdigit():
                    retry_after_s = float(header.strip())
            except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError) as failure:
                last = SegdError(f"could not reach segd at {self.base_url}: {failure}")
            if self.retry.gives_up_after(attempt):
                raise last
            self.retry.sleep(self.retry.delay_s(attempt, retry_after_s))

    def request(
        self,
        method: str,
        path: str,
        query: Optional[Dict[str, Any]] = None,
        body: Any = None,
        timeout_s: Optional[float] = None,
    ) -> Any:
        """One JSON request with retries; answers the decoded JSON body."""
        data = None
        extra = {}
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            extra["Content-Type"] = "application/json"
        request = urllib.request.Request(
            self._url(path, query), data=data, method=method, headers=self._headers(extra)
        )
        with self._open(request, timeout_s or self.timeout_s) as response:
            return json.loads(response.read().decode("utf-8"))

    # -- membership ------------------------------------------------------------------

    def segments_of(self, profile: str) -> List[Dict[str, Any]]:
        """The segments ``profile`` is in (``[{"id", "name"}]``); :class:`SegdError` with
        code ``profile_not_found`` for an unknown profile."""
        path = "/v1/profiles/" + urllib.parse.quote(profile, safe="") + "/segments"
        return self.request("GET", path)["segments"]

    def is_member(self, segment: SegmentRef, profile: str) -> bool:
        """Whether ``profile`` is in ``segment`` (id or name); unknown profiles are not."""
        path = "/v1/segments/{}/members/{}".format(
            urllib.parse.quote(str(segment), safe=""), urllib.parse.quote(profile, safe="")
        )
        return bool(self.request("GET", path)["member"])

    def membership(
        self, profiles: Sequence[str], segments: Sequence[SegmentRef]
    ) -> Dict[str, Dict[str, bool]]:
        """Bulk check: ``{profile: {segment: bool}}`` (segment keys as given, as strings).
        Split into requests of at most segd's 100,000 pairs each."""
        segments = list(segments)
        if not segments or not profiles:
            return {profile: {} for profile in profiles}
        per_request = max(1, MAX_BULK_PAIRS // len(segments))
        results: Dict[str, Dict[str, bool]] = {}
        profiles = list(profiles)
        for start in range(0, len(profiles), per_request):
            answer = self.request(
                "POST",
                "/v1/membership",
                body={"profiles": profiles[start : start + per_request], "segments": segments},
            )
            results.update(answer["results"])
        return results

    # -- change feed: long-poll ------------------------------------------------------

    def changes(
        self,
        after: int = 0,
        segment: Optional[SegmentRef] = None,
        limit: Optional[int] = None,
        wait_ms: int = 0,
    ) -> ChangesPage:
        """One long-poll read: changes after ``after`` (waits up to ``wait_ms`` for the
        first). Raises :class:`FellBehind` when retention dropped unseen changes."""
        if not 0 <= wait_ms <= MAX_WAIT_MS:
            raise ValueError(f"wait_ms must be 0 to {MAX_WAIT_MS}")
        answer = self.request(
            "GET",
            "/v1/changes",
            query={"after": after, "segment": segment, "limit": limit, "wait_ms": wait_ms},
            timeout_s=self.timeout_s + wait_ms / 1000.0,
        )
        return ChangesPage(
            changes=[Change.from_json(change) for change in answer["changes"]],
            head=int(answer["head"]),
            next_after=int(answer["next_after"]),
        )

    def head(self) -> int:
        """The sequence of the newest change (0 when there is none yet)."""
        try:
            return self.changes(after=0, limit=1).head
        except FellBehind as behind:
            return int(behind.details.get("head", behind.oldest_available - 1))

    def iter_changes(
        self,
        after: Optional[int] = None,
        segment: Optional[SegmentRef] = None,
        checkpoint=None,
        wait_ms: int = MAX_WAIT_MS,
        limit: Optional[int] = None,
        max_polls: Optional[int] = None,
    ) -> Iterator[Change]:
        """Every change after the position, forever (or ``max_polls`` polls), by long-poll.

        The position is ``checkpoint.load()`` when a checkpoint is given and holds one,
        else ``after``, else the current head. With a checkpoint, a change's sequence is
        saved once the loop body that received it returns (at least once: a crash while
        handling a change delivers it again on restart).
        """
        position = checkpoint.load() if checkpoint is not None else None
        if position is None:
            position = after if after is not None else self.head()
        polls = 0
        while max_polls is None or polls < max_polls:
            polls += 1
            page = self.changes(after=position, segment=segment, limit=limit, wait_ms=wait_ms)
            for change in page.changes:
                yield change
                if checkpoint is not None:
                    checkpoint.save(change.sequence)
            # With a segment filter, next_after also skips other segments' changes.
            if page.next_after > position:
                position = page.next_after
                if checkpoint is not None and not page.changes:
                    checkpoint.save(position)

    # -- change feed: Server-Sent Events ---------------------------------------------

    def stream_changes(
        self,
        after: Optional[int] = None,
        segment: Optional[SegmentRef] = None,
        checkpoint=None,
        read_timeout_s: float = SSE_READ_TIMEOUT_S,
    ) -> Iterator[Change]:
        """Every change after the position, pushed over SSE; reconnects (with back-off)
        after a dropped connection, resuming with ``Last-Event-ID``.

        Position and checkpointing as in :meth:`iter_changes`. Raises :class:`FellBehind`
        when the server says the reader fell behind.
        """
        position = checkpoint.load() if checkpoint is not None else None
        if position is None:
            # Pin the head now: a reconnect before the first change must not skip any.
            position = after if after is not None else self.head()
        failures = 0
        while True:
            request = urllib.request.Request(
                self._url("/v1/changes/stream", {"segment": segment}),
                headers=self._headers(
                    {"Accept": "text/event-stream", "Last-Event-ID": str(position)}
                ),
            )
            try:
                response = self._open(request, read_timeout_s)
            except SegdError:
                raise
            try:
                for event, data, event_id in _sse_events(response):
                    failures = 0
                    if event == "change":
                        change = Change.from_json(json.loads(data))
                        yield change
                        position = change.sequence if event_id is None else int(event_id)
                        if checkpoint is not None:
                            checkpoint.save(position)
                    elif event == "fell_behind":
                        detail = json.loads(data)
                        raise FellBehind(
                            detail.get("message", "fell behind"),
                            requested_after=int(detail.get("requested_after", position)),
                            oldest_available=int(detail.get("oldest_available", 0)),
                        )
            except (ConnectionError, socket.timeout, TimeoutError, OSError):
                pass  # reconnect below
            finally:
                response.close()
            failures += 1
            if self.retry.gives_up_after(failures):
                raise SegdError(f"change stream from {self.base_url} kept dropping")
            self.retry.sleep(self.retry.delay_s(failures))


def _sse_events(response: Iterable[bytes]) -> Iterator[tuple]:
    """Parses a text/event-stream into ``(event, data, id)``; comments are skipped."""
    event, data, event_id = None, [], None
    for raw in response:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield (event or "message", "\n".join(data), event_id)
            event, data, event_id = None, [], None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            event_id = value
