from textkit.slug import slugify
from textkit.stats import average_word_length, longest_word
from textkit.words import count_words, split_words

__all__ = ["average_word_length", "count_words", "longest_word", "slugify", "split_words"]
