"""Database access for the catalogue."""

import sqlite3

from shop.config import DATABASE_PATH


def connect():
    """Open the catalogue database."""
    return sqlite3.connect(DATABASE_PATH)


def find_products(name):
    """Products whose name matches ``name``."""
    cur = connect().cursor()
    cur.execute(f"SELECT id, name, price FROM products WHERE name LIKE '%{name}%'")
    return cur.fetchall()


def product_count():
    """How many products there are."""
    cur = connect().cursor()
    cur.execute("SELECT COUNT(*) FROM products")
    return cur.fetchone()[0]
