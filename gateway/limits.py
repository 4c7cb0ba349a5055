"""How much one request may ask of an upstream, and how much of an upstream's answer the gateway will hold.

One frozen object inside ``Settings`` (``settings.limits``), each field a
``HYBRID_GATEWAY_*`` variable. The embedding defaults are OpenAI's own limits,
so a client that works against OpenAI works here; they exist because an
embedding reply grows with the number of inputs (one vector each), so an
unbounded ``input`` list is an unbounded reply held in the gateway's memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Limits:
    max_embedding_inputs: int = 2048
    """Items in one /v1/embeddings ``input`` (OpenAI: 2048)."""
    max_embedding_tokens: int = 300_000
    """Tokens summed over one request's inputs (OpenAI: 300,000), as the gateway estimates them."""
    max_embedding_input_tokens: int = 8192
    """Tokens in one input (OpenAI's text-embedding-3 models: 8192)."""
    max_upstream_reply_bytes: int = 128 * 1024 * 1024
    """A non-streamed upstream answer larger than this is dropped (502); room for OpenAI's largest embedding
    reply (2048 inputs of 3072 floats as JSON, ~90 MB)."""

    def __post_init__(self) -> None:
        for item in fields(self):
            if getattr(self, item.name) < 1:
                raise ValueError(f"HYBRID_GATEWAY_{item.name.upper()} must be >= 1, got {getattr(self, item.name)}")

    @classmethod
    def from_env(cls, env: Callable[[str, str], str]) -> Limits:
        """Read through ``Settings``' own helper, so every variable has the ``HYBRID_GATEWAY_`` prefix."""
        default = cls()
        return cls(**{item.name: int(env(item.name.upper(), str(getattr(default, item.name))))
                      for item in fields(cls)})
