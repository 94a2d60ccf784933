"""Chat messages to a prompt: the documented plain fallback and llama.cpp's built-in templates."""

from __future__ import annotations

from paretoserve.openai_api.chat import render_chat, render_plain, render_with_template

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def test_plain_single_user_turn() -> None:
    assert render_plain([("user", "Hi there")]) == "User: Hi there\nAssistant:"


def test_plain_full_conversation_with_system() -> None:
    messages = [("system", "You are terse."), ("user", "Hi"), ("assistant", "Hello."), ("user", "Name a colour.")]
    assert render_plain(messages) == "You are terse.\n\nUser: Hi\nAssistant: Hello.\nUser: Name a colour.\nAssistant:"


def test_plain_developer_counts_as_system_and_several_are_joined() -> None:
    messages = [("developer", "Rule one."), ("user", "Go"), ("system", "Rule two.")]
    assert render_plain(messages) == "Rule one.\nRule two.\n\nUser: Go\nAssistant:"


def test_plain_without_system_has_no_leading_blank_line() -> None:
    assert not render_plain([("user", "a"), ("assistant", "b")]).startswith("\n")
    assert render_plain([("user", "a"), ("assistant", "b")]) == "User: a\nAssistant: b\nAssistant:"


def test_render_chat_without_template_is_the_plain_fallback() -> None:
    messages = [("system", "S"), ("user", "U")]
    assert render_chat(None, messages) == render_plain(messages) == "S\n\nUser: U\nAssistant:"
    assert render_chat("", messages) == render_plain(messages)


def test_known_template_family_is_applied() -> None:
    messages = [("system", "S"), ("user", "Hi")]
    expected = "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert render_with_template(CHATML, messages) == expected
    assert render_chat(CHATML, messages) == expected


def test_template_maps_developer_to_system() -> None:
    rendered = render_with_template(CHATML, [("developer", "D"), ("user", "U")])
    assert rendered.startswith("<|im_start|>system\nD<|im_end|>")


def test_template_keeps_non_ascii_text() -> None:
    rendered = render_with_template(CHATML, [("user", "Grüße, 世界 🙂")])
    assert "Grüße, 世界 🙂" in rendered


def test_long_messages_are_rendered_whole() -> None:
    long_text = "word " * 2000
    rendered = render_with_template(CHATML, [("user", long_text)])
    assert rendered == f"<|im_start|>user\n{long_text}<|im_end|>\n<|im_start|>assistant\n"


def test_unknown_template_falls_back_to_plain() -> None:
    messages = [("user", "Hi")]
    assert render_with_template("{{ something llama.cpp does not know }}", messages) is None
    assert render_chat("{{ something llama.cpp does not know }}", messages) == "User: Hi\nAssistant:"
