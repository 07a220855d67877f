"""One TLS context per process for the HTTP clients of a platform server.

httpx builds an SSL context for every Client it makes, loading the whole CA bundle:
30-70 ms, more than a request to the server takes. A project working through a server
opens two clients (records, blobs), and a process that opens its stores again (after
`configure`, in another project, in each test) paid that each time, even for an
http:// server that never uses it. The context is built once, on first use, as httpx
builds its default (certifi's bundle, or SSL_CERT_FILE / SSL_CERT_DIR as set then);
an SSLContext is safe to share between clients and threads.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl


@cache
def tls_context() -> ssl.SSLContext:
    """The verifying TLS context every client of a server shares (`verify=`)."""
    import httpx

    return httpx.create_ssl_context()
