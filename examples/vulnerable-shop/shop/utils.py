"""Small helpers without side effects."""


def money(amount: float) -> str:
    """Format an amount in euros."""
    return f"{amount:.2f} EUR"
