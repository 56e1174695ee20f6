"""Chat turns the tests build prompts from (kept out of conftest.py: importing conftest as a module would run its
session setup a second time)."""


def user_turn(text, n_images=1):
    """A chat user turn with `n_images` image blocks after the text (the paper's image position)."""
    return [{"role": "user", "content": [{"type": "text", "text": text}] + [{"type": "image"}] * n_images}]
