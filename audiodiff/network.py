"""The only door to the network: the Hugging Face Hub, reached only when the user asks for it.

Loading a model never touches the network by itself.  ``load("hf://org/repo")`` is an explicit request;
a text encoder named in a model's config is fetched from the Hub only with ``AUDIODIFF_ALLOW_HUB=1`` in
the environment.  Either way a machine without a network fails at once with one line, instead of
retrying for a minute.
"""

from __future__ import annotations

import os
import socket

from .errors import ModelLoadError

#: set to 1 to let a model config's text encoder name be downloaded from the Hub
ALLOW_HUB_ENV = "AUDIODIFF_ALLOW_HUB"
HUB_HOST = "huggingface.co"
#: seconds to wait for the Hub before calling the machine offline
PROBE_TIMEOUT = 3.0


def hub_allowed() -> bool:
    """Whether the user opted in to Hub downloads for names inside model configs."""
    return os.environ.get(ALLOW_HUB_ENV, "").strip().lower() in ("1", "true", "yes")


def require_hub(what: str) -> None:
    """An immediate :class:`ModelLoadError` naming ``what`` if the Hub cannot be reached (offline,
    ``HF_HUB_OFFLINE=1``, no DNS)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes"):
        raise ModelLoadError(f"cannot fetch {what} from the Hugging Face Hub: HF_HUB_OFFLINE is set")
    try:
        socket.create_connection((HUB_HOST, 443), timeout=PROBE_TIMEOUT).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ModelLoadError(f"cannot fetch {what} from the Hugging Face Hub: {HUB_HOST} is not reachable "
                             f"({reason.lower()}); this machine looks offline") from None
