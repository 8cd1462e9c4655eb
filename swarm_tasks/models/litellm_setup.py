"""litellm, imported once and set up for us: offline price map, no banners, response types pre-built.

Every module of ours that uses litellm imports it from here (``from swarm_tasks.models.litellm_setup
import litellm``), so the setup always happens before the first call.
"""

from __future__ import annotations

import os

# litellm fetches its price map from GitHub at import time unless this is set: offline that costs
# seconds per process (and is network I/O tests must never do). It must be set before the first
# import of litellm anywhere.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import warnings

import litellm

# Offline and quiet: no HuggingFace tokenizer downloads (llama/cohere models would try), and no
# "Give Feedback / Get Help" banner printed to stdout on every exception (thousands under retries).
litellm.disable_hf_tokenizer_download = True
litellm.suppress_debug_info = True


def _prebuild_response_types() -> None:
    """Build litellm's lazily built response models now, quietly: the first build warns (pydantic on a
    ReadOnly TypedDict item of litellm's), and a warning inside a call would surface as its failure
    wherever warnings are errors (our tests) -- litellm wraps it in APIConnectionError."""
    from litellm.types import utils as types

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for cls in (types.Message, types.Delta, types.Choices, types.StreamingChoices, types.Usage,
                    types.ModelResponse, types.ModelResponseStream):
            cls.model_rebuild()


_prebuild_response_types()

__all__ = ["litellm"]
