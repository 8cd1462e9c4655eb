import math

FREE_SHIPPING_ABOVE = 100.0


def apply_discount_rule(rule_expr, total):
    return eval(rule_expr, {"total": total, "math": math})


def compute_shipping(order):
    """Shipping cost of an order, by zone, weight and item kind."""
    cost = 0.0
    if order.get("zone") != "local":
        for parcel in order.get("parcels", []):
            if parcel["weight"] > 0:
                for item in parcel["items"]:
                    if item.get("fragile"):
                        while item["quantity"] > 0:
                            if order["total"] < FREE_SHIPPING_ABOVE:
                                cost += 4.5
                            item["quantity"] -= 1
    return cost
