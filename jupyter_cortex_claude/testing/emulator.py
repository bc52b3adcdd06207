"""A strict Snowflake Cortex REST emulator: a real HTTP server on 127.0.0.1 in its own thread.

It runs its own asyncio loop in a thread so it serves sync tests, async tests, and a Jupyter server
running in the test's loop alike. It is an independent oracle: it does not import the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.httputil import HTTPHeaders
from tornado.iostream import StreamClosedError
from tornado.netutil import bind_sockets

from . import complete_rendering, rendering, responses_rendering
from .auth import EXPIRED_SESSION, Credentials
from .catalogue import ModelTable
from .chat_validation import validate_chat_request
from .complete_validation import validate_complete_request, wants_stream
from .login import LOGIN_PATHS, SSO_PATH, LoginProtocol
from .messages_validation import validate_messages_request
from .refusals import SESSION_EXPIRED, CortexRefusal, snowflake_error_body
from .replies import Fault, Reply
from .responses_validation import validate_responses_request

log = logging.getLogger(__name__)

MESSAGES_PATH = "/api/v2/cortex/v1/messages"
CHAT_PATH = "/api/v2/cortex/v1/chat/completions"
# The preview Responses API (OpenAI models only, stateless): see responses_validation.py.
RESPONSES_PATH = "/api/v2/cortex/v1/responses"
MODELS_PATH = "/api/v2/cortex/models"
# Cortex's older native endpoint (content_list, tool_spec, SSE without event names).
COMPLETE_PATH = "/api/v2/cortex/inference:complete"
ROUTES = {
    MESSAGES_PATH: "POST",
    CHAT_PATH: "POST",
    RESPONSES_PATH: "POST",
    COMPLETE_PATH: "POST",
    MODELS_PATH: "GET",
}
MAX_BODY_BYTES = 20 * 1024 * 1024
STATUS_MESSAGES = {
    400: "Invalid request options.",
    402: "Budget exceeded: the model consumption budget for this account is exhausted.",
    403: "Not Authorized.",
    429: "Too many requests. Please retry later.",
    500: "Internal error.",
    503: "Inference timed out.",
}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: HTTPHeaders  # case-insensitive
    body: Any  # parsed JSON, or None
    raw: bytes
    at: float = field(default_factory=time.monotonic)  # when it arrived (time.monotonic())


def _log_request(handler: tornado.web.RequestHandler) -> None:
    # Refusals are the point of the emulator: log them at debug, not as tornado's warnings.
    request = handler.request
    status = handler.get_status()
    log.debug(
        "%s %s -> %s (%.1f ms)", request.method, request.path, status, 1000 * request.request_time()
    )


def _default_responder(body: dict[str, Any]) -> Reply:
    return Reply.text(f"Hello from {body.get('model')} on the Cortex emulator.")


class CortexEmulator:
    """See the package docstring of :mod:`jupyter_cortex_claude.testing` for usage."""

    def __init__(
        self,
        *,
        account: str = "TESTORG-TESTACCOUNT",
        user: str = "TESTUSER",
        pats: Iterable[str] = ("test-pat-0123456789",),
        output_ceiling: int = 16384,
        model_output_ceilings: Mapping[str, int] | None = None,
        models: Iterable[str] | None = None,
        token_delay: float = 0.0,
        passwords: Mapping[str, str] | None = None,
        session_lifetime: float = 3600.0,
        port: int = 0,
        refused_betas: Iterable[str] = (),
    ) -> None:
        self.account = account
        self.user = user
        self.credentials = Credentials(account, user, pats)
        # The connector's login protocol (password, PAT, key-pair, OAuth, browser SSO logins and
        # session tokens that expire on schedule): see testing/login.py.
        self.login = LoginProtocol(
            self.credentials, passwords=passwords, session_lifetime=session_lifetime
        )
        self.models = ModelTable(models, output_ceiling, model_output_ceilings)
        self.token_delay = token_delay
        # Documented betas this account refuses all the same (a Cortex stricter than documented).
        self.refused_betas = frozenset(refused_betas)
        # Every refusal sent: (path, model asked for, status, message), for tests to count.
        self.refusals: list[tuple[str, Any, int, str]] = []
        self.responder: Callable[[dict[str, Any]], Reply] | None = _default_responder
        self.requests: list[RecordedRequest] = []
        # Paths answered with 404 as if this deployment lacked them, e.g. {MESSAGES_PATH} for an
        # account without the Messages API (the gateway then falls back to Chat Completions).
        self.missing_paths: set[str] = set()
        # Streams the client (the gateway) closed before the answer was complete: proof that a
        # client leaving closes the upstream request.
        self.streams_abandoned = 0
        # Requests whose connection the client closed before the answer was complete, at any
        # stage (waiting for the first byte included): the fault battery's proof of closing.
        self.requests_dropped = 0
        self.host = "127.0.0.1"
        self.port = port  # 0: any free port, known once started
        self._lock = threading.Lock()
        self._replies: deque[Reply] = deque()
        self._faults: deque[Fault] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------------ scripting

    def add_pat(self, token: str) -> None:
        self.credentials.add_pat(token)

    def revoke(self, token: str) -> None:
        self.credentials.revoke(token)

    def register_public_key(self, public_key_pem: bytes | str, user: str | None = None) -> None:
        self.credentials.register_public_key(public_key_pem, user)

    def add_session_token(self, token: str) -> None:
        self.credentials.add_session_token(token)

    def expire_session_token(self, token: str) -> None:
        """From now on the token gets Snowflake's HTTP 200 + code 390112 answer."""
        self.credentials.expire_session_token(token)

    def add_oauth_token(self, token: str) -> None:
        self.credentials.add_oauth_token(token)

    def add_workload_identity(self, issuer: str, subject: str, user: str | None = None) -> None:
        """Let an OIDC workload whose token has this ``iss`` and ``sub`` log in as ``user``."""
        with self.login._lock:
            self.login.workload_identities[(issuer, subject)] = (user or self.user).upper()

    def add_oauth_client(self, client_id: str, secret: str) -> None:
        """An OAuth client that may get access tokens by the client-credentials grant."""
        with self.login._lock:
            self.login.oauth_clients[client_id] = secret

    def add_password(
        self, password: str, user: str | None = None, passcode: str | None = None
    ) -> None:
        """Let ``user`` log in with ``password`` (and, when given, this MFA passcode)."""
        name = (user or self.user).upper()
        with self.login._lock:
            self.login.passwords[name] = password
            if passcode is not None:
                self.login.passcodes[name] = passcode

    def token_requests(self) -> list[RecordedRequest]:
        """Session renewals the connector asked for (``/session/token-request``)."""
        return [r for r in list(self.requests) if r.path == "/session/token-request"]

    def login_requests(self) -> list[RecordedRequest]:
        return [r for r in list(self.requests) if r.path == "/session/v1/login-request"]

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def fail_next(self, fault: Fault, times: int = 1) -> None:
        with self._lock:
            self._faults.extend([fault] * times)

    def inference_requests(self) -> list[RecordedRequest]:
        return [r for r in list(self.requests) if r.method == "POST" and r.path in ROUTES]

    def reset(self) -> None:
        with self._lock:
            self._replies.clear()
            self._faults.clear()
            self.requests.clear()
        self.responder = _default_responder

    def _take_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _next_reply(self, body: dict[str, Any], *, consume: bool) -> Reply:
        with self._lock:
            if self._replies:
                return self._replies.popleft() if consume else self._replies[0]
        responder = self.responder or _default_responder
        return responder(body)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> CortexEmulator:
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self._listen())
            except BaseException as error:
                failure.append(error)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=serve, name="cortex-emulator", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            self._thread = None
            raise RuntimeError("the Cortex emulator could not start") from failure[0]
        return self

    async def _listen(self) -> None:
        app = tornado.web.Application(
            [(r"/.*", _CortexHandler, {"emulator": self})], log_function=_log_request
        )
        sockets = bind_sockets(self.port, self.host, family=socket.AF_INET)
        # Bodies up to 64 MiB are read so that the 20 MiB limit is answered with Cortex's 413.
        self._server = HTTPServer(app, max_body_size=64 * 1024 * 1024)
        self._server.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.stop()
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.close_all_connections(), 5)

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        self._thread = None
        self._loop = None

    def __enter__(self) -> CortexEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _CortexHandler(tornado.web.RequestHandler):
    SUPPORTED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

    def initialize(self, emulator: CortexEmulator) -> None:
        self.emulator = emulator
        self.request_id = str(uuid.uuid4())

    def on_connection_close(self) -> None:
        if not self._finished:
            with self.emulator._lock:
                self.emulator.requests_dropped += 1
        super().on_connection_close()

    def prepare(self) -> None:
        # Every Snowflake response carries the request id; support asks for it.
        self.set_header("X-Snowflake-Request-ID", self.request_id)
        raw = self.request.body or b""
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        self.emulator.requests.append(
            RecordedRequest(
                self.request.method or "",
                self.request.path,
                self.request.query,
                HTTPHeaders(self.request.headers),
                parsed,
                raw,
            )
        )

    async def get(self) -> None:
        await self._dispatch()

    post = put = patch = delete = get

    def _send_json(self, status: int, payload: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(payload))

    def _refuse(self, refusal: CortexRefusal) -> None:
        recorded = self.emulator.requests[-1] if self.emulator.requests else None
        body = recorded.body if recorded is not None else None
        model = body.get("model") if isinstance(body, dict) else None
        with self.emulator._lock:
            self.emulator.refusals.append(
                (self.request.path, model, refusal.status, refusal.message)
            )
        self._send_json(refusal.status, refusal.body(self.request_id))

    async def _dispatch(self) -> None:
        try:
            await self._answer()
        except CortexRefusal as refusal:
            self._refuse(refusal)
        except StreamClosedError:
            # The client went away mid-answer; there is nobody left to answer.
            self.detach().close()
        except Exception as error:
            # A test's responder failed: say so in Snowflake's shape instead of tornado's HTML page.
            log.exception("Cortex emulator failed to answer")
            if not self._headers_written:
                self._refuse(CortexRefusal(500, f"emulator error: {type(error).__name__}: {error}"))

    async def _answer(self) -> None:
        path, method = self.request.path, self.request.method
        if path in LOGIN_PATHS:
            status, payload = self.emulator.login.answer(self, self.emulator.url)
            self._send_json(status, payload)
            return
        if path == SSO_PATH:
            # The identity provider's page: it sends the browser back to the connector's port.
            self.redirect(
                self.emulator.login.sso_redirect(
                    self.get_query_argument("port"), self.get_query_argument("proof")
                )
            )
            return
        if path not in ROUTES or path in self.emulator.missing_paths:
            raise CortexRefusal(404, f"Not found: {method} {path}")
        if method != ROUTES[path]:
            raise CortexRefusal(405, f"Method {method} is not allowed on {path}")
        if self.emulator.credentials.authenticate(self.request.headers) == EXPIRED_SESSION:
            # Snowflake's session-token quirk: 200 with the error in the body; nothing was done.
            body = snowflake_error_body(
                "Your session has expired. Please login again.", SESSION_EXPIRED, self.request_id
            )
            self._send_json(200, body)
            return
        if path == MODELS_PATH:
            # The OpenAPI spec's example for this endpoint is a list of names: {"models": ["", ""]}.
            self._send_json(200, {"models": self.emulator.models.names()})
            return
        raw = self.request.body or b""
        if len(raw) > MAX_BODY_BYTES:
            raise CortexRefusal(413, "Request body is larger than the 20 MiB limit.")
        if "application/json" not in self.request.headers.get("Content-Type", ""):
            raise CortexRefusal(400, "Content-Type must be application/json")
        try:
            body = json.loads(raw)
        except ValueError:
            raise CortexRefusal(400, "request body is not valid JSON") from None
        models = self.emulator.models
        if path == MESSAGES_PATH:
            validate_messages_request(
                self.request.headers, body, models, self.emulator.refused_betas
            )
        elif path == COMPLETE_PATH:
            validate_complete_request(body, models)
        elif path == RESPONSES_PATH:
            validate_responses_request(body, models)
        else:
            validate_chat_request(body, models)
        await self._perform(path, body, len(raw) // 4)

    async def _perform(self, path: str, body: dict[str, Any], input_tokens: int) -> None:
        fault = self.emulator._take_fault()
        kind = fault.kind if fault else None
        if fault is not None and kind == "status":
            if fault.retry_after is not None:
                self.set_header("Retry-After", fault.retry_after)
            message = fault.message or STATUS_MESSAGES.get(fault.http_status, "Error.")
            raise CortexRefusal(fault.http_status, message, fault.code)
        if fault is not None and kind == "ok_with_error_body":
            body_json = snowflake_error_body(
                fault.message or "", fault.code or "390112", self.request_id
            )
            self._send_json(200, body_json)
            return
        if kind == "connection_reset":
            self._reset_connection()
            return
        if fault is not None and kind == "stall_before_first_byte":
            await asyncio.sleep(fault.seconds)
        stream = wants_stream(body) if path == COMPLETE_PATH else body.get("stream") is True
        if kind == "malformed_sse":
            await self._send_garbage(path, stream)
            return
        if kind == "endless_event" and fault is not None:
            await self._send_endless_event(fault.after_events)
            return
        reply = self.emulator._next_reply(body, consume=fault is None or fault.delivers_reply)
        model = self.emulator.models.get(body["model"])
        assert model is not None  # validated
        if not stream:
            if path == MESSAGES_PATH:
                payload = rendering.anthropic_message(reply, model.name, input_tokens)
            elif path == COMPLETE_PATH:
                payload = complete_rendering.complete_json(reply, model.name, input_tokens)
            elif path == RESPONSES_PATH:
                payload = responses_rendering.response_json(reply, body, model.name, input_tokens)
            else:
                payload = rendering.chat_completion(
                    reply, model.name, input_tokens, model.is_claude
                )
            if kind == "cut_stream":
                await self._send_truncated(json.dumps(payload).encode())
                return
            self._send_json(200, payload)
            return
        if path == MESSAGES_PATH:
            frames = rendering.anthropic_stream(reply, model.name, input_tokens)
        elif path == COMPLETE_PATH:
            frames = complete_rendering.complete_stream(reply, model.name, input_tokens)
        elif path == RESPONSES_PATH:
            frames = responses_rendering.response_stream(reply, body, model.name, input_tokens)
        else:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            frames = rendering.chat_stream(
                reply, model.name, input_tokens, model.is_claude, include_usage
            )
        await self._send_frames(frames, fault)

    async def _send_frames(self, frames: list[rendering.Frame], fault: Fault | None) -> None:
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        delay = self.emulator.token_delay
        if fault is not None and fault.token_delay is not None:
            delay = fault.token_delay
        for index, frame in enumerate(frames):
            if fault is not None and index == fault.after_events:
                if fault.kind == "cut_stream":
                    await self.flush()
                    self._close_abruptly()
                    return
                if fault.kind == "stall_mid_stream":
                    await self.flush()
                    await asyncio.sleep(fault.seconds)
            if frame.is_delta and delay > 0:
                await asyncio.sleep(delay)
            if self.request.connection.stream is None or self.request.connection.stream.closed():
                with self.emulator._lock:
                    self.emulator.streams_abandoned += 1
                return
            try:
                if fault is not None and fault.kind == "crlf_split":
                    await self._write_crlf_split(frame.data)
                else:
                    self.write(frame.data)
                await self.flush()
            except StreamClosedError:
                with self.emulator._lock:
                    self.emulator.streams_abandoned += 1
                return
        self.finish()

    async def _write_crlf_split(self, data: bytes) -> None:
        # Each CR leaves in one write and its LF in the next, a moment later: a TCP segment
        # boundary can fall anywhere.
        pieces = data.replace(b"\n", b"\r\n").split(b"\r")
        for index, piece in enumerate(pieces):
            chunk = piece if index == len(pieces) - 1 else piece + b"\r"
            if chunk:
                self.write(chunk)
                await self.flush()
                await asyncio.sleep(0.002)

    async def _send_endless_event(self, megabytes: int) -> None:
        self.set_header("Content-Type", "text/event-stream")
        self.write(b'event: content_block_delta\ndata: {"type": "content_block_delta", "text": "')
        piece = b"a" * 65536
        try:
            for _ in range(megabytes * 16):
                if self.request.connection.stream is None:
                    raise StreamClosedError()
                self.write(piece)
                await self.flush()
        except StreamClosedError:
            with self.emulator._lock:
                self.emulator.streams_abandoned += 1
            return
        self.finish()

    async def _send_truncated(self, payload: bytes) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Content-Length", str(len(payload)))
        self.write(payload[: len(payload) // 2])
        await self.flush()
        self._close_abruptly()

    async def _send_garbage(self, path: str, stream: bool) -> None:
        if not stream:
            self.set_header("Content-Type", "application/json")
            self.finish(b'{"id": "msg_broken", "content": [{"type": "te')
            return
        self.set_header("Content-Type", "text/event-stream")
        if path == MESSAGES_PATH:
            self.write(b'event: message_start\ndata: {"type": "message_start", "message": {bro\n\n')
            self.write(b"data: \x00\x01 this is not json\n\n")
            self.write(b"event: content_block_delta\ndata: [1, 2\n\n")
        elif path == RESPONSES_PATH:
            self.write(b'event: response.created\ndata: {"type": "response.created", "resp\n\n')
            self.write(b"event: response.output_text.delta\ndata: not json at all\n\n")
        else:
            self.write(b'data: {"id": "chatcmpl-broken", "choices": [{\n\n')
            self.write(b"data: not json at all\n\n")
        self.finish()

    def _close_abruptly(self) -> None:
        # Closing before the terminating chunk: the client sees an incomplete chunked body.
        self.detach().close()

    def _reset_connection(self) -> None:
        stream = self.detach()
        # SO_LINGER 0 turns close() into a TCP RST, as when a load balancer drops the connection.
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        stream.close()
