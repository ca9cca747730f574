"""The web page: ``audiodiff ui`` serves a Gradio page over the same public functions as the CLI.

Two layers, so that the first is testable without a browser or Gradio: :mod:`audiodiff.ui.studio`
runs the page's jobs (:class:`Studio`: one operation, its clips in a folder of their own, and the
``audiodiff ...`` command that makes the same bytes), and :mod:`audiodiff.ui.page` lays the page out
with Gradio (:func:`build_app`) and serves it (:func:`launch`).
"""

from .page import build_app, describe, example_prompts, launch, offered_models, require_gradio
from .studio import (AUDIO_ARGS, FLAGS, MAX_INPUT_SECONDS, MAX_PLAYERS, OPERATIONS, Cancelled, Result, Studio,
                     check_input, cli_command, stoppable)

__all__ = ["AUDIO_ARGS", "FLAGS", "MAX_INPUT_SECONDS", "MAX_PLAYERS", "OPERATIONS", "Cancelled", "Result", "Studio",
           "build_app", "check_input", "cli_command", "describe", "example_prompts", "launch", "offered_models",
           "require_gradio", "stoppable"]
