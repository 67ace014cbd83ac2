"""HMAC request-signature verifier: a Portcullis plugin in Python.

A client signs each request with a secret it shares with the gateway:

    x-key-id:    partner-a
    date:        Sun, 06 Dec 2026 21:30:00 GMT
    x-signature: sha256=<hex HMAC-SHA256 of the string to sign>

where the string to sign is the method, the path (with its query) as the gateway forwards
it (percent-encoding normalised, dot segments resolved: sign the canonical form), the
`date` header and the hex SHA-256 of the body, one per line:

    POST\n/orders?x=1\nSun, 06 Dec 2026 21:30:00 GMT\n<sha256(body) hex>

The plugin refuses (401, problem+json) a request without these headers, with an unknown key
id, a date further than `max_skew_seconds` from the gateway's clock (replays of old
requests), or a signature that does not match. A verified request goes on without its
`x-signature` header, with the key id as its consumer (access log, rate limits, later
plugins) and in `x-signed-by` for the upstream.

What it does not do: a captured request can be replayed while its date is within the skew
(there is no nonce), and headers other than `date` are not signed (so the same signed
request is valid on every route that shares the keys). Add a nonce header, kept in the
`cache` interface, and sign the host to close both.

Config:
    keys = { "partner-a" = "a secret of 16 bytes or more" }   # key id -> shared secret
    max_skew_seconds = 300                                     # optional, default 300
"""

import hashlib
import hmac
import time
from email.utils import parsedate_to_datetime

import portcullis
from portcullis import Phases, problem

MIN_SECRET_BYTES = 16


class HmacVerifier(portcullis.Plugin):
    # The body is part of what is signed: ask the gateway to buffer it.
    phases = Phases.ON_REQUEST | Phases.REQUEST_BODY

    def configure(self, config):
        keys = config.get("keys")
        if not isinstance(keys, dict) or not keys:
            raise ValueError('`keys` must be a table of key id = "secret"')
        self.keys = {}
        for key_id, secret in keys.items():
            if not isinstance(secret, str) or len(secret.encode()) < MIN_SECRET_BYTES:
                raise ValueError(f"keys.{key_id}: the secret must be a string of at least {MIN_SECRET_BYTES} bytes")
            self.keys[key_id] = secret.encode()
        skew = config.get("max_skew_seconds", 300)
        if not isinstance(skew, int) or isinstance(skew, bool) or not 1 <= skew <= 3600:
            raise ValueError("max_skew_seconds must be an integer from 1 to 3600")
        self.max_skew = skew

    def on_request(self, request):
        key_id = request.header("x-key-id")
        date = request.header("date")
        signature = request.header("x-signature")
        if key_id is None or date is None or signature is None:
            return refuse("the request must carry x-key-id, date and x-signature")
        secret = self.keys.get(key_id)
        if secret is None:
            return refuse("unknown key id")
        try:
            signed_at = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return refuse("the date header is not an HTTP date")
        if abs(time.time() - signed_at) > self.max_skew:
            return refuse("the date is too far from the gateway's clock")
        if not signature.startswith("sha256="):
            return refuse("the signature must be sha256=<hex>")

        path = request.path()
        query = request.query()
        if query is not None:
            path += "?" + query
        body = request.body()
        if body is None:
            # Cannot happen with REQUEST_BODY asked for; never sign a body not seen.
            raise RuntimeError("the request body was not buffered")
        to_sign = "\n".join([request.method(), path, date, hashlib.sha256(body).hexdigest()])
        expected = hmac.new(secret, to_sign.encode(), hashlib.sha256).hexdigest()
        # Bytes, not text: compare_digest refuses non-ASCII text, and a client's header
        # may hold any byte.
        given = signature[len("sha256="):].lower().encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(expected.encode(), given):
            portcullis.count("signature_mismatch")
            return refuse("the signature does not match")

        request.remove_header("x-signature")
        # One value only: a second `x-key-id` appended by the client must not reach an
        # upstream that reads the last one.
        request.set_header("x-key-id", key_id)
        request.set_header("x-signed-by", key_id)
        request.set_identity(portcullis.Identity(subject=None, consumer=key_id, scopes=[], groups=[], claims=[]))
        print(f"verified a request signed by {key_id}")
        return None


def refuse(detail):
    # The reason names what is wrong, never the client's values.
    return problem(401, "Unauthorized", detail, [("www-authenticate", 'HMAC realm="portcullis"')])


Handler = portcullis.export(HmacVerifier)
