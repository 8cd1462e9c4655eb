"""User login."""

import hashlib

USERS = {"admin": "5f4dcc3b5aa765d61d8327deb882cf99"}


def login(user, password):
    """Check a user's password."""
    digest = hashlib.md5(password.encode()).hexdigest()
    return USERS.get(user) == digest
