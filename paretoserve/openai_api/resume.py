"""The engine's side of `paretoserve_resume`, the router's extension that lets a greedy stream survive its replica.

With the field present, every SSE event of a stream starts with a comment line `: tokens ID ...`
naming the tokens its text came from (SSE clients ignore comments; the router takes them off).
When a replica dies mid-stream, the router sends the same request to another one with those
tokens in `tokens`: the engine appends them to the prompt, replays them through its text stream
(so bytes of a split character and a held-back stop-string prefix carry over, and no text is sent
twice) and goes on as if it had generated them itself: they count in max_tokens, min_tokens and
usage, and the chunks keep the first response's id.
"""

from __future__ import annotations

from paretoserve.openai_api.protocol import ApiError, Resume
from paretoserve.openai_api.text import TextStream

PARAM = "paretoserve_resume.tokens"


def check_tokens(resume: Resume | None, n_vocab: int, max_tokens: int) -> list[int]:
    """The tokens a request continues after (none without the extension), checked against the request."""
    if resume is None or not resume.tokens:
        return []
    tokens = resume.tokens
    if len(tokens) >= max_tokens:
        raise ApiError(400, f"{PARAM} holds {len(tokens)} tokens: nothing is left of max_tokens {max_tokens}",
                       param=PARAM)
    bad = next((t for t in tokens if not 0 <= t < n_vocab), None)
    if bad is not None:
        raise ApiError(400, f"token id {bad} is outside the vocabulary [0, {n_vocab})", param=PARAM)
    return tokens


def replay(text: TextStream, tokens: list[int]) -> None:
    """Push the tokens the client already has the text of, one at a time as the engine first did, and drop it."""
    for token in tokens:
        text.push((token,))


def token_comment(tokens: tuple[int, ...]) -> str:
    """The SSE comment line ahead of an event, naming the tokens of its text."""
    return ": tokens " + " ".join(map(str, tokens)) + "\n"
