"""audiodiff: diffusion models of audio on mel spectrograms.

    import audiodiff
    model = audiodiff.load("speech")                 # a shipped model, or a folder
    clips = audiodiff.generate(model, num_samples=2, seed=0)
    clips[0].save("out/0.wav")
"""

from ._version import __version__

from .errors import AudiodiffError, AudioError, ConfigError, ModelLoadError, SettingsMismatchError  # noqa: E402
from .registry import build, names, register  # noqa: E402
from .model import DiffusionModel  # noqa: E402
from .hub import list_models, load  # noqa: E402
from .audio.clip import Audio  # noqa: E402
from .generate import generate  # noqa: E402
from .edit import continue_audio, inpaint, interpolate, interpolate_prompts, loop, variation  # noqa: E402
from .sampling import seam_score  # noqa: E402

__all__ = [
    "__version__",
    "Audio",
    "AudiodiffError",
    "AudioError",
    "ConfigError",
    "DiffusionModel",
    "ModelLoadError",
    "SettingsMismatchError",
    "build",
    "continue_audio",
    "inpaint",
    "interpolate",
    "interpolate_prompts",
    "loop",
    "seam_score",
    "variation",
    "generate",
    "list_models",
    "load",
    "names",
    "register",
]
