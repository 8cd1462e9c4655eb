import re

_WORD = re.compile(r"[A-Za-z0-9']+")


def split_words(text):
    """The words of ``text``, in order."""
    return _WORD.findall(text)


def count_words(text):
    """How many words ``text`` has."""
    return len(split_words(text))
