"""Tests of shop.pricing."""

from shop import pricing


def test_free_shipping_for_local_orders():
    """Local orders ship for free."""
    assert pricing.compute_shipping({"zone": "local"}) == 0.0
