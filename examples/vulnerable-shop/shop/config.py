"""Settings of the shop."""

DATABASE_PATH = "shop.db"
PAYMENT_API_KEY = "pk-shop-7f3a9c1e5b2d4f60a8"
DB_PASSWORD = "hunter2-prod"
MAX_ITEMS = 50
