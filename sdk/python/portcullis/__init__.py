"""The Portcullis plugin SDK for Python (componentize-py).

A thin layer over the bindings componentize-py generates from `wit/plugin.wit`:

* the entry's config is parsed from JSON once per instance and handed to ``configure``;
* ``on_request`` returns ``None`` to let the request go on, or a reply (``reply``,
  ``problem``) to answer the client instead;
* an uncaught exception becomes a plugin error carrying its type, message and place
  (``ValueError: bad date (app.py:31)``) instead of a bare ``unreachable`` trap, so the
  entry's failure policy answers the client and the gateway logs why.

A plugin module (``app.py``) subclasses :class:`Plugin` and exports it::

    import portcullis

    class Deny(portcullis.Plugin):
        def on_request(self, request):
            if request.header("x-deny") is not None:
                return portcullis.problem(403, "Forbidden", "x-deny is set")

    Handler = portcullis.export(Deny)

See sdk/python/README.md for building, testing and what to avoid.
"""

from __future__ import annotations

import json
import os
import traceback
from typing import Any, Callable, List, Optional, Sequence, Tuple

from componentize_py_types import Err
from wit_world.imports import host, types

__all__ = [
    "Plugin",
    "export",
    "reply",
    "problem",
    "log",
    "count",
    "now_millis",
    "Phases",
    "Request",
    "Response",
    "Reply",
    "Identity",
    "PluginError",
]

Phases = types.Phases
Request = types.Request
Response = types.Response
Reply = types.Reply
Identity = types.Identity
Header = Tuple[str, str]


class PluginError(Exception):
    """Raise to fail the request with this message (the entry's failure policy answers)."""


class Plugin:
    """Base class of a plugin. Override what you need.

    ``phases`` says which calls the plugin wants; the default is the request phase only.
    Add ``Phases.REQUEST_BODY`` to read ``request.body()``, ``Phases.ON_RESPONSE`` (and
    ``Phases.RESPONSE_BODY``) for ``on_response``.
    """

    phases: Phases = Phases.ON_REQUEST

    def configure(self, config: Any) -> None:
        """Check and keep the entry's ``config`` table (parsed JSON). Raise
        ``ValueError`` with a message naming the key to refuse it: the gateway then
        refuses the whole configuration, naming the route and the plugin."""

    def on_request(self, request: Request) -> Optional[Reply]:
        """The request phase: return ``None`` to continue (with any edits made through
        ``request``), or a :class:`Reply` to answer the client."""
        return None

    def on_response(self, response: Response) -> None:
        """The response phase (when ``phases`` asks for it)."""


def reply(status: int, body: bytes | str = b"", headers: Sequence[Header] = ()) -> Reply:
    """An answer to send instead of calling the upstream."""
    if isinstance(body, str):
        body = body.encode()
    return Reply(status=status, headers=list(headers), body=bytes(body))


# The request being served, while ``on_request`` runs: ``problem`` reads its id.
_serving: dict[str, Request] = {}


def problem(
    status: int,
    title: str,
    detail: Optional[str] = None,
    headers: Sequence[Header] = (),
    *,
    kind: Optional[str] = None,
) -> Reply:
    """An RFC 9457 problem+json answer shaped like the gateway's own: ``type`` is
    ``urn:portcullis:problem:<kind>`` (``kind`` defaults to the title in lower case, words
    joined by ``-``: ``"Bad Request"`` gives ``bad-request``), with the request id when
    made in ``on_request``, and ``cache-control: no-store``. Never put client input or
    secrets in ``detail``."""
    doc = {"type": f"urn:portcullis:problem:{kind or _kind(title)}", "title": title, "status": status}
    if detail is not None:
        doc["detail"] = detail
    request = _serving.get("request")
    if request is not None:
        doc["request_id"] = request.request_id()
    return reply(
        status,
        json.dumps(doc, separators=(",", ":")),
        [("content-type", "application/problem+json"), ("cache-control", "no-store"), *headers],
    )


def _kind(title: str) -> str:
    words = "".join(c if c.isascii() and c.isalnum() else " " for c in title.lower()).split()
    return "-".join(words) or "plugin"


_LEVELS = {
    "trace": host.Level.TRACE,
    "debug": host.Level.DEBUG,
    "info": host.Level.INFO,
    "warn": host.Level.WARN,
    "error": host.Level.ERROR,
}


def log(level: str, message: str) -> None:
    """A line in the gateway's log, tagged with route, plugin and request id. ``print``
    works too (as an info line); never log secrets."""
    host.log(_LEVELS.get(level, host.Level.INFO), message)


def count(name: str, delta: int = 1) -> None:
    """Add to ``portcullis_plugin_events_total{name=...}`` (names ``[a-z0-9_]``, ≤ 64)."""
    host.count(name, delta)


def now_millis() -> int:
    """Wall-clock milliseconds since the Unix epoch (``time.time()`` works too)."""
    return host.now_millis()


def _describe(error: BaseException) -> str:
    """``Type: message (file:line)``, the place being the innermost frame of the plugin's
    own code, so the log says where without a whole traceback."""
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    frames = traceback.extract_tb(error.__traceback__)
    sdk = os.path.dirname(__file__)
    own = [f for f in frames if not f.filename.startswith(sdk)]
    if own:
        place = own[-1]
        text += f" ({os.path.basename(place.filename)}:{place.lineno})"
    return text


def _guarded(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Err:
        raise
    except BaseException as error:  # noqa: BLE001 - every escape would otherwise trap
        raise Err(_describe(error)) from None


def export(plugin_class: type[Plugin]) -> type:
    """The ``Handler`` class componentize-py exports, driving one ``plugin_class`` object
    per instance. Assign it to ``Handler`` in the app module."""

    state: dict[str, Plugin] = {}

    def plugin(config_text: Optional[str] = None) -> Plugin:
        found = state.get("plugin")
        if found is None:
            text = host.config() if config_text is None else config_text
            config = json.loads(text)
            found = plugin_class()
            found.configure(config)
            state["plugin"] = found
        return found

    class Handler:
        def check_config(self, config: str) -> Phases:
            state.pop("plugin", None)
            return _guarded(lambda: plugin(config).phases)

        def on_request(self, request: Request) -> types.Action:
            def call() -> types.Action:
                _serving["request"] = request
                try:
                    answer = plugin().on_request(request)
                finally:
                    # The handle is the host's for this call only.
                    _serving.clear()
                if answer is None:
                    return types.Action_Continue()
                if not isinstance(answer, Reply):
                    raise TypeError(f"on_request returned {type(answer).__name__}, not a Reply or None")
                return types.Action_Respond(answer)

            return _guarded(call)

        def on_response(self, response: Response) -> None:
            _guarded(lambda: plugin().on_response(response))

    Handler.__name__ = Handler.__qualname__ = "Handler"
    return Handler
