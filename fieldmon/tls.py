"""TLS for MQTT connections, shared by the agent and the collector.

Only the SSL context is built here; the ``[mqtt.tls]`` settings that feed it are declared
twice, once for each configuration layer (:mod:`fieldmon.config_structs` for the agent,
:mod:`fieldmon.config_models` for the collector), and both call :func:`tls_context`.
"""

from __future__ import annotations

import ssl
from pathlib import Path


def tls_context(
    ca_file: Path | None, cert_file: Path | None, key_file: Path | None, insecure: bool
) -> ssl.SSLContext:
    """Client context: verify the broker against ``ca_file`` (or the system store), present a
    client certificate when one is given; ``insecure`` skips verification (a lab only)."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if cert_file:
        ctx.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
