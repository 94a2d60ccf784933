"""Chat messages to one prompt string: the GGUF's own template, or a documented plain fallback."""

from __future__ import annotations

import ctypes

import llama_cpp

# The fallback for models without a chat template (the bundled Gemma 3 270M is a base model):
#   <system text>\n\n              (when there is a system or developer message)
#   User: <text>\nAssistant: <text>\n ...
#   Assistant:
ROLE_NAMES = {"user": "User", "assistant": "Assistant"}


def render_plain(messages: list[tuple[str, str]]) -> str:
    """The plain fallback prompt for (role, text) pairs, ending with the assistant's cue."""
    system = "\n".join(text for role, text in messages if role in ("system", "developer"))
    turns = [f"{ROLE_NAMES[role]}: {text}" for role, text in messages if role in ROLE_NAMES]
    head = f"{system}\n\n" if system else ""
    return head + "\n".join(turns + ["Assistant:"])


def render_with_template(template: str, messages: list[tuple[str, str]]) -> str | None:
    """Apply llama.cpp's built-in rendering of a known template family; None if it does not know it."""
    roles = [("system" if role == "developer" else role).encode() for role, _ in messages]
    texts = [text.encode() for _, text in messages]
    chat = (llama_cpp.llama_chat_message * len(messages))(
        *[llama_cpp.llama_chat_message(role=r, content=t) for r, t in zip(roles, texts, strict=True)])
    size = 2 * sum(len(t) for t in texts) + 512
    for _ in range(2):
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_chat_apply_template(template.encode(), chat, len(messages), True, buf, size)
        if n < 0:
            return None
        if n <= size:
            return buf.raw[:n].decode("utf-8", "replace")
        size = n
    return None


def render_chat(template: str | None, messages: list[tuple[str, str]]) -> str:
    """The prompt for a chat request: the model's template when llama.cpp can apply it, else plain."""
    if template:
        rendered = render_with_template(template, messages)
        if rendered is not None:
            return rendered
    return render_plain(messages)
