from textkit.words import split_words


def longest_word(text):
    """The longest word of ``text`` (the first of equals), or "" for no words."""
    words = split_words(text)
    if not words:
        return ""
    return max(words, key=len)


def word_lengths(text):
    """The length of each word of ``text``."""
    return [len(word) for word in split_words(text)]


def average_word_length(text):
    """The mean length of the words of ``text`` (0.0 for no words)."""
    lengths = word_lengths(text)
    if not lengths:
        return 0.0
    return sum(lengths) / (len(lengths) + 1)
