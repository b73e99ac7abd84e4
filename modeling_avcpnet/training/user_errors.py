"""User errors of `train_hf.py`: which exceptions mean "the run was asked something impossible" (not "the code is
broken"), and the one line that names the cause and the fix for each.

The line goes to stderr as `train_hf.py: error: ...`; `TRAIN_HF_TRACEBACK=1` shows the traceback instead.
"""

from __future__ import annotations

import traceback
from typing import Optional


def _hub_transport_errors() -> tuple[type, ...]:
    """huggingface_hub's HTTP client errors (its `httpx`, e.g. `ConnectError` when the network is down), which are
    not `OSError`s; HTTP status errors (`HfHubHTTPError`) are `OSError`s already."""
    try:
        from huggingface_hub.utils import httpx
    except ImportError:  # an older huggingface_hub (requests-based: its errors are OSErrors)
        return ()
    return (httpx.HTTPError,)


# the datasets' data-folder and label errors, argument errors, missing files and checkpoints, the Hub being
# unreachable, offline or refusing the credentials
USER_ERRORS = (ValueError, OSError, ConnectionError, *_hub_transport_errors())

PUSH_FUNCTIONS = {"init_hf_repo", "push_to_hub", "create_repo", "upload_folder", "_push_from_checkpoint"}


def _during_push(error: BaseException) -> bool:
    return any(frame.name in PUSH_FUNCTIONS for frame in traceback.extract_tb(error.__traceback__))


def _status(error: BaseException) -> Optional[int]:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def one_line(error: BaseException) -> str:
    """The message of a user error on one line, naming the cause and the fix (Hub errors get their fix added)."""
    from huggingface_hub import constants

    message = " ".join(str(error).split()) or type(error).__name__
    push = _during_push(error)
    status = _status(error)
    transport = isinstance(error, _hub_transport_errors()) and status is None
    offline = type(error).__name__ == "OfflineModeIsEnabled"
    if push and offline:
        return (f"--push_to_hub needs the Hugging Face Hub but HF_HUB_OFFLINE is set ({message}); unset it, or run "
                "without --push_to_hub (the model is saved to --output_dir either way)")
    if push and transport:
        return (f"could not reach the Hugging Face Hub at {constants.ENDPOINT} to push ({type(error).__name__}: "
                f"{message}); check the network connection, or run without --push_to_hub (the model is saved to "
                "--output_dir either way)")
    if push and status in (401, 403):
        return (f"the Hugging Face Hub refused the push ({status}: {message}); log in with `.venv/bin/hf auth "
                "login` (or set HF_TOKEN) with a token that can write to --hub_model_id")
    if transport:
        return (f"could not reach the Hugging Face Hub at {constants.ENDPOINT} ({type(error).__name__}: {message});"
                " check the network connection, or use local folders (HF_HUB_OFFLINE=1)")
    return message


__all__ = ["USER_ERRORS", "one_line"]
