"""The shopping cart, kept in a cookie."""

import base64
import pickle


def load_cart(cookie_value):
    """Decode the cart from its cookie."""
    if not cookie_value:
        return []
    return pickle.loads(base64.b64decode(cookie_value))


def dump_cart(items):
    """Encode the cart for its cookie."""
    return base64.b64encode(pickle.dumps(items)).decode()
