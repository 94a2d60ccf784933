"""TextStream: incremental UTF-8 decoding and stop strings that never reach the client."""

from __future__ import annotations

from paretoserve.openai_api.text import TextStream
from tests.fakes.vocab import Vocab


def run(stream: TextStream, tokens: list[int]) -> list[str]:
    """Push tokens one at a time, as the engine delivers them; returns every delta."""
    return [stream.push([t]) for t in tokens]


def test_plain_text_passes_through_and_counts_tokens() -> None:
    stream = TextStream(Vocab("Hello", ",", " world"))
    assert run(stream, [0, 1, 2]) == ["Hello", ",", " world"]
    assert stream.n_tokens == 3
    assert stream.flush() == ""
    assert not stream.stopped


def test_several_tokens_in_one_push() -> None:
    stream = TextStream(Vocab("a", "b", "c"))
    assert stream.push((0, 1, 2)) == "abc"
    assert stream.n_tokens == 3


def test_multibyte_character_split_across_tokens() -> None:
    euro = "€".encode()  # 3 bytes
    stream = TextStream(Vocab(b"x" + euro[:1], euro[1:2], euro[2:] + b"y"))
    assert run(stream, [0, 1, 2]) == ["x", "", "€y"]
    assert stream.n_tokens == 3


def test_emoji_split_byte_by_byte() -> None:
    emoji = "🙂".encode()  # 4 bytes
    stream = TextStream(Vocab(*[emoji[i:i + 1] for i in range(4)]))
    assert run(stream, [0, 1, 2, 3]) == ["", "", "", "🙂"]


def test_incomplete_character_at_the_end_is_replaced_on_flush() -> None:
    stream = TextStream(Vocab("ok", "é".encode()[:1]))
    assert run(stream, [0, 1]) == ["ok", ""]
    assert stream.flush() == "\ufffd"


def test_invalid_bytes_become_replacement_characters() -> None:
    stream = TextStream(Vocab(b"\xff", "a"))
    assert "".join(run(stream, [0, 1])) == "\ufffda"


def test_stop_string_inside_one_token() -> None:
    stream = TextStream(Vocab("Hello", " wor", "ld. END here", "never"), stop=("END",))
    deltas = run(stream, [0, 1, 2])
    assert "".join(deltas) == "Hello world. "
    assert stream.stopped
    assert stream.push([3]) == ""  # nothing after a stop
    assert stream.flush() == ""


def test_stop_string_split_across_tokens_is_never_emitted() -> None:
    stream = TextStream(Vocab("Hel", "lo", " wor", "ld"), stop=("lo wo",))
    deltas = run(stream, [0, 1, 2])
    assert stream.stopped
    assert "".join(deltas) == "Hel"
    assert all("lo wo" not in d and not d.endswith("lo") for d in deltas)
    assert deltas[0] == "He"  # the "l" could begin "lo wo": held back


def test_stop_string_spanning_three_tokens() -> None:
    stream = TextStream(Vocab("a<", "|e", "nd", "|>b"), stop=("<|end|>",))
    deltas = run(stream, [0, 1, 2, 3])
    assert deltas == ["a", "", "", ""]
    assert stream.stopped


def test_held_back_prefix_is_released_when_it_turns_out_not_to_be_a_stop() -> None:
    stream = TextStream(Vocab("ab", "S", "T", "x"), stop=("STOP",))
    assert run(stream, [0, 1, 2]) == ["ab", "", ""]
    assert stream.push([3]) == "STx"
    assert not stream.stopped


def test_held_back_partial_stop_is_released_by_flush() -> None:
    stream = TextStream(Vocab("the end is ST"), stop=("STOP",))
    assert stream.push([0]) == "the end is "
    assert stream.flush() == "ST"
    assert not stream.stopped


def test_earliest_of_several_stop_strings_wins() -> None:
    stream = TextStream(Vocab("one two three"), stop=("three", "two"))
    assert stream.push([0]) == "one "
    assert stream.stopped


def test_stop_split_across_a_multibyte_character_boundary() -> None:
    word = "naïve".encode()
    cut = word.index("ï".encode()) + 1  # in the middle of ï
    stream = TextStream(Vocab("a ", word[:cut], word[cut:] + b" b"), stop=("naïve",))
    deltas = run(stream, [0, 1, 2])
    assert "".join(deltas) == "a "
    assert stream.stopped


def test_min_tokens_delays_stop_strings() -> None:
    stream = TextStream(Vocab("x"), stop=("x",), min_tokens=3)
    assert run(stream, [0, 0]) == ["x", "x"]  # stop strings do not count before 3 tokens
    assert not stream.stopped
    assert stream.push([0]) == ""
    assert stream.stopped
    assert stream.n_tokens == 3


def test_min_tokens_reached_finds_a_stop_held_back_from_before() -> None:
    stream = TextStream(Vocab("ab", "c", "d"), stop=("bcd",), min_tokens=2)
    assert stream.push([0]) == "a"  # "b" may begin the stop string
    assert stream.push([1]) == ""  # "bc" still may
    assert stream.push([2]) == ""
    assert stream.stopped


def test_empty_stop_list_holds_nothing_back() -> None:
    stream = TextStream(Vocab("S", "T"), stop=())
    assert run(stream, [0, 1]) == ["S", "T"]
