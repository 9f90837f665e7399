"""Google's service-account flow, locally: a stand-in token endpoint and throwaway service-account keys."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any


class TokenEndpoint:
    """A stand-in for ``oauth2.googleapis.com/token`` on a free local port, for the length of a ``with`` block.

    Every signed-JWT grant gets ``token``, or with ``refuse`` the answer Google gives
    a bad signature (400 ``invalid_grant``). ``hits`` counts the grants asked for;
    ``url`` is the ``token_uri`` to put in a service-account key.
    """

    def __init__(self, token: str = "fake-token", *, refuse: bool = False) -> None:
        self.token = token
        self.refuse = refuse
        self.hits = 0
        self.url = ""
        self._server: http.server.ThreadingHTTPServer | None = None

    def __enter__(self) -> TokenEndpoint:
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                endpoint._answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/token"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        self.hits += 1
        answer: dict[str, Any]
        if self.refuse:
            status, answer = 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        else:
            status, answer = 200, {"access_token": self.token, "expires_in": 3600, "token_type": "Bearer"}
        body = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


def service_account(token_uri: str) -> tuple[dict[str, str], Any]:
    """A throwaway service-account key (generated here, used nowhere else): the key file's fields and the RSA key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "test-project",
        "private_key_id": "throwaway",
        "private_key": pem,
        "client_email": "signer@test-project.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }
    return info, key
