"""The behaviour textkit promises."""

from textkit import average_word_length, count_words, longest_word, slugify, split_words


def test_split_and_count_words():
    assert split_words("Hello, world! It's 2024.") == ["Hello", "world", "It's", "2024"]
    assert count_words("one two  three") == 3
    assert count_words("") == 0


def test_slugify():
    assert slugify("Héllo, Wörld!") == "hello-world"
    assert slugify("a  b", separator="_") == "a_b"


def test_longest_word():
    assert longest_word("a bb ccc dd") == "ccc"
    assert longest_word("") == ""


def test_average_word_length():
    assert average_word_length("a bb ccc") == 2.0
    assert average_word_length("") == 0.0
