"""Is the Hugging Face hub usable right now? One quick answer, so that offline use fails at once.

Without this, a hub download on a machine without network spends half a minute in
``huggingface_hub``'s retries (1 + 2 + 4 + 8 + 8 s), each printed as a warning, before the
error. :func:`hub_offline_reason` says why downloads cannot work (``HF_HUB_OFFLINE`` set, or the
hub's host unreachable) in well under a second; callers then read the local cache only
(``local_files_only=True``) and report one clear message. Only the standard library is imported.
"""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse

_TRUE = ("1", "true", "yes", "on")
PROBE_TIMEOUT_S = 3.0
DEFAULT_ENDPOINT = "https://huggingface.co"
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def offline_by_setting() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) switches downloads off."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_endpoint() -> str:
    """The hub's URL (``HF_ENDPOINT`` if set)."""
    return os.environ.get("HF_ENDPOINT", "").strip() or DEFAULT_ENDPOINT


@functools.lru_cache(maxsize=8)
def _unreachable(host: str, port: int, timeout: float) -> str | None:
    """Why ``host:port`` cannot be reached (``None`` if a TCP connection opens); cached per process."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as error:  # DNS failure, refused, no route, timeout
        return f"{host} is unreachable ({type(error).__name__}: {error})"


def hub_offline_reason(timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why the hub cannot be used for downloads now, or ``None`` if it can (or a proxy decides).

    ``"HF_HUB_OFFLINE is set"`` when downloads are switched off; else a TCP connection to the hub's host
    is tried once per process (at most ``timeout`` seconds). Behind a proxy (``HTTPS_PROXY`` ...) no probe
    is made and ``None`` is returned: the proxy's answer is the one that counts.
    """
    if offline_by_setting():
        return "HF_HUB_OFFLINE is set (downloads are off)"
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return None
    url = urlparse(hub_endpoint())
    if not url.hostname:
        return None
    return _unreachable(url.hostname, url.port or (443 if url.scheme == "https" else 80), timeout)
