import re
import unicodedata


def slugify(text, separator="-"):
    """``text`` as a lower-case URL slug: ASCII letters and digits joined by ``separator``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    return separator.join(words)
