"""Turn OpenAI chat `messages` into the text the classifier judges.

The last user turn is what the answer must address, so its text is scored; earlier turns only
contribute depth (how many, how long), because the training data is single-turn and would not
teach the model what earlier text means. Content may be a string or a list of parts; only
`text` parts count. A request with no text in its last user turn (empty, images only, tool
output) cannot be judged, and says so instead of guessing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Conversation:
    """What the features are computed from."""

    text: str
    prior_turns: int
    context_chars: int
    has_system: bool

    @property
    def judgeable(self) -> bool:
        return bool(self.text.strip())


def content_text(content: Any) -> str:
    """Text of one message's `content`: a string, or the `text` parts of a list; else ''."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, bytes | bytearray):
        parts = [
            part["text"]
            for part in content
            if isinstance(part, Mapping)
            and part.get("type", "text") == "text"
            and isinstance(part.get("text"), str)
        ]
        return "\n".join(parts)
    return ""


def conversation(messages: Sequence[Mapping[str, Any]]) -> Conversation:
    """Split a chat into the judged turn (last user message) and the context before it."""
    items = [m for m in messages if isinstance(m, Mapping)]
    last_user = max((i for i, m in enumerate(items) if m.get("role") == "user"), default=None)
    if last_user is None:
        return Conversation(text="", prior_turns=0, context_chars=0, has_system=False)
    earlier = items[:last_user]
    return Conversation(
        text=content_text(items[last_user].get("content")),
        prior_turns=sum(1 for m in earlier if m.get("role") == "user"),
        context_chars=sum(len(content_text(m.get("content"))) for m in earlier if m.get("role") != "system"),
        has_system=any(m.get("role") in ("system", "developer") for m in earlier),
    )


def prompt_messages(prompt: str) -> list[dict[str, str]]:
    """A bare prompt as a one-turn chat, so datasets and live traffic share one code path."""
    return [{"role": "user", "content": prompt}]
