"""The OpenAI-compatible backend's requests on asyncio, sent through aiohttp directly.

On asyncio the connection pool is aiohttp's, under httpx-aiohttp's transport. Going through
httpx's API costs a request and a response object, header copies and a chain of body
generators: about half the CPU of a whole request (bench/provider.py). The backend's own
pool (not one a caller handed in) is therefore used with aiohttp's API, on the same session.
httpx-sse's decoders still parse streams. Failures are translated as on the httpx path
(:mod:`limelight.providers._http`), so both paths raise the same errors.
"""

from __future__ import annotations

import codecs
import math
from collections.abc import AsyncGenerator, Iterable
from typing import TYPE_CHECKING, Any

import httpx
from httpx_sse._decoders import SSEDecoder, SSELineDecoder

from ..errors import BadResponse, ProviderTimeout
from ._http import status_error, transport_error

if TYPE_CHECKING:
    import aiohttp
    from multidict import CIMultiDict

    from ..schemas import StreamEvent
    from ._sse import StreamAssembler

__all__ = ["AiohttpRequests", "RawHeaders", "SSEReader", "client_timeout", "session_of"]

#: What an answer's headers are here: aiohttp's raw (name, value) byte pairs.
RawHeaders = Iterable[tuple[bytes, bytes]]


def session_of(transport: httpx.AsyncBaseTransport) -> aiohttp.ClientSession:
    """The aiohttp session under a transport made by ``make_async_transport`` on asyncio,
    opened now if the transport has not opened it yet (it then closes it as its own)."""
    import aiohttp

    client = getattr(transport, "client", None)
    if isinstance(client, aiohttp.ClientSession):
        return client
    session: aiohttp.ClientSession = transport.get_client()  # type: ignore[attr-defined]
    transport.client = session  # type: ignore[attr-defined]
    return session


def client_timeout(timeout: httpx.Timeout, total: float | None = None) -> aiohttp.ClientTimeout:
    """httpx's phases as aiohttp's timeouts, as httpx-aiohttp maps them, and ``total`` for
    the whole exchange (none by default: a stream may last as long as data keeps coming)."""
    import aiohttp

    def finite(seconds: float | None) -> float | None:
        # aiohttp rounds deadlines up to whole seconds: an infinite one cannot be.
        return seconds if seconds is not None and math.isfinite(seconds) else None

    return aiohttp.ClientTimeout(
        total=finite(total),
        sock_connect=finite(timeout.connect),
        sock_read=finite(timeout.read),
        connect=finite(timeout.pool),
    )


class AiohttpRequests:
    """Requests of one backend over one aiohttp session.

    :param session: the session (of the running event loop).
    :param errors: the exception types a failed exchange raises (the transport's).
    :param secret: the API key, kept out of every error message.
    """

    __slots__ = ("_errors", "_secret", "_session", "_urls")

    def __init__(
        self,
        session: aiohttp.ClientSession,
        errors: tuple[type[Exception], ...],
        secret: str | None,
    ) -> None:
        self._session = session
        self._errors = errors
        self._secret = secret
        self._urls: dict[str, Any] = {}

    def _url(self, url: str) -> Any:
        # yarl parses a string on every request; the backend's URLs are a handful.
        found = self._urls.get(url)
        if found is None:
            import yarl

            found = yarl.URL(url)
            if len(self._urls) < 64:
                self._urls[url] = found
        return found

    async def exchange(
        self,
        method: str,
        url: str,
        headers: CIMultiDict[str],
        body: bytes | None,
        timeout: aiohttp.ClientTimeout,
    ) -> tuple[int, RawHeaders, bytes]:
        """One request, body read in full: the status (a success), the headers and the body.

        :raises ProviderError: the error status, or the transport's failure, translated.
        """
        try:
            async with self._session.request(
                method,
                self._url(url),
                data=body,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                if status < 300:
                    return status, response.raw_headers, await response.read()
                error = await self._status_error(response, method, url)
        except self._errors as exc:
            if type(exc) is TimeoutError and timeout.total is not None:
                # aiohttp's total timeout: the whole attempt took too long.
                raise ProviderTimeout(
                    f"{method} {url}: no answer within the attempt timeout of {timeout.total} s"
                ) from exc
            raise transport_error(exc, method, url, secret=self._secret) from exc
        raise error

    async def _status_error(
        self, response: aiohttp.ClientResponse, method: str, url: str
    ) -> Exception:
        """The error for an error status (its body read, the connection then released)."""
        read_error: Exception | None = None
        try:
            content = await response.read()
        except self._errors as exc:  # the status says enough; keep the cause
            content, read_error = b"", exc
        error = status_error(
            httpx.Response(
                response.status,
                headers=list(response.raw_headers),
                request=httpx.Request(method, url),
            ),
            content,
            secret=self._secret,
        )
        if read_error is not None:
            error.__cause__ = read_error
        return error

    async def open_stream(
        self, url: str, headers: CIMultiDict[str], body: bytes, timeout: aiohttp.ClientTimeout
    ) -> aiohttp.ClientResponse:
        """POST ``body``; return the answer once it is known to be an event stream, its body
        unread. The caller reads it (:func:`sse_lines`) and closes or releases it.

        :raises ProviderError: an error status, a transport failure, or an answer that is not
            an event stream.
        """
        try:
            response = await self._session.request(
                "POST",
                self._url(url),
                data=body,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            )
        except self._errors as exc:
            raise transport_error(exc, "POST", url, secret=self._secret) from exc
        try:
            error = await self._refusal(response, url)
        except BaseException:
            response.close()
            raise
        if error is not None:
            response.close()
            raise error
        return response

    async def _refusal(self, response: aiohttp.ClientResponse, url: str) -> Exception | None:
        """Why a stream's answer cannot be read as one, if it cannot."""
        if response.status >= 300:
            return await self._status_error(response, "POST", url)
        content_type = response.headers.get("content-type", "").partition(";")[0]
        if "text/event-stream" not in content_type:
            # httpx-sse's words, as the httpx path reports them.
            return BadResponse(
                "expected an event stream: Expected response header Content-Type to "
                f"contain 'text/event-stream', got {content_type!r}"
            )
        return None

    async def events(
        self, response: aiohttp.ClientResponse, assembler: StreamAssembler, url: str
    ) -> AsyncGenerator[StreamEvent, None]:
        """The events of an answer :meth:`open_stream` opened: its body's bytes through
        httpx-sse's decoders into ``assembler``, ending with DONE. The connection goes back
        to the pool once the body was read to its end; otherwise (an error, an early close,
        a cancellation) it is closed, never reused half-read.

        :raises ProviderError: the transport failed, the data is invalid, or the stream
            ended before its end marker.
        """
        ended = False
        try:
            feed = assembler.feed
            reader = SSEReader()
            read = response.content.readany
            errors = self._errors
            while True:
                try:
                    data = await read()
                except errors as exc:
                    raise transport_error(exc, "POST", url, secret=self._secret) from exc
                if not data:
                    break
                for sse in reader.feed(data):
                    for event in feed(sse):
                        yield event
            ended = True
            response.release()
            for sse in reader.end():
                for event in feed(sse):
                    yield event
        finally:
            if not ended:
                response.close()
        for event in assembler.finish():
            yield event


class SSEReader:
    """Splits an event stream's bytes into the ``data`` of its events, with httpx-sse's
    decoders (as ``EventSource.aiter_sse`` does over httpx)."""

    __slots__ = ("_decode", "_lines", "_text")

    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")("replace")
        self._lines = SSELineDecoder()
        self._decode = SSEDecoder().decode

    def feed(self, data: bytes) -> list[str]:
        """The data of the events that ``data`` completes."""
        found: list[str] = []
        decode = self._decode
        for line in self._lines.decode(self._text.decode(data)):
            sse = decode(line)
            if sse is not None:
                found.append(sse.data)
        return found

    def end(self) -> list[str]:
        """The data of the events completed by the end of the body."""
        tail = self._text.decode(b"", True)
        lines = self._lines.decode(tail) if tail else []
        found: list[str] = []
        for line in [*lines, *self._lines.flush()]:
            sse = self._decode(line)
            if sse is not None:
                found.append(sse.data)
        return found
