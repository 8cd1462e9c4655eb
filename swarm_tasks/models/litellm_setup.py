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
from typing import Annotated, Any, get_args, get_origin, get_type_hints

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

_PLAIN = (str, int, float, bool, type(None))
_MAX_DEPTH = 64


def _plain_json(value: object, depth: int = 0) -> bool:
    """``value`` is made of JSON's own types only (what our gateway sends), nested no deeper than 64."""
    if isinstance(value, _PLAIN):
        return True
    if depth > _MAX_DEPTH:
        return False
    if type(value) is dict:
        return all(type(k) is str and _plain_json(v, depth + 1) for k, v in value.items())
    if type(value) is list:
        return all(_plain_json(v, depth + 1) for v in value)
    return False


def _renames_or_formats(tp: Any, seen: set[int]) -> bool:
    """Whether any field under the request type ``tp`` has an alias or a format the SDK would apply."""
    from openai._utils import is_typeddict
    from openai._utils._transform import PropertyInfo

    if id(tp) in seen:
        return False
    seen.add(id(tp))
    if is_typeddict(tp):
        return any(_renames_or_formats(h, seen) for h in get_type_hints(tp, include_extras=True).values())
    if get_origin(tp) is Annotated and any(isinstance(m, PropertyInfo) and (m.alias or m.format)
                                          for m in tp.__metadata__):
        return True
    return any(_renames_or_formats(arg, seen) for arg in get_args(tp))


def _skip_identity_request_transform() -> bool:
    """The OpenAI SDK walks every chat request against its typed-dict types before sending it (renaming
    aliased keys, formatting dates and files, dropping omitted arguments): for plain JSON against types
    with no alias and no format that walk changes nothing but the omitted arguments, and it was ~6% of a
    model review worker's CPU (the tool schemas and the whole conversation, on every call). Here such a
    request keeps only its given arguments, unwalked; anything else (and an SDK whose chat types gain an
    alias or a format) goes through the SDK's own transform. True if installed."""
    try:
        from openai._utils import is_given
        from openai.resources.chat.completions import completions as module
        from openai.types.chat import completion_create_params as params
    except ImportError:
        return False
    plain_types = (params.CompletionCreateParamsNonStreaming, params.CompletionCreateParamsStreaming)
    if any(_renames_or_formats(t, set()) for t in plain_types) or getattr(module, "_swarm_plain", False):
        return False
    real = module.async_maybe_transform

    async def maybe_transform(data: object, expected_type: object) -> Any:
        if expected_type in plain_types and type(data) is dict:
            given = {k: v for k, v in data.items() if is_given(v)}
            if _plain_json(given):
                return given
        return await real(data, expected_type)

    module.async_maybe_transform = maybe_transform
    module._swarm_plain = True  # type: ignore[attr-defined]  # once per process
    return True


REQUEST_TRANSFORM_SKIPPED = _skip_identity_request_transform()

__all__ = ["REQUEST_TRANSFORM_SKIPPED", "litellm"]
