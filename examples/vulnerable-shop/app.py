"""Web entry point of the shop: routes that glue the shop modules together."""

import logging

from flask import Flask, request
from shopkit.serializers import load_order

from shop import cart, config, db, pricing, reports
from shop.auth import login

app = Flask(__name__)
log = logging.getLogger("shop")


@app.route("/products")
def products():
    """Search the catalogue."""
    term = request.args.get("q", "")
    return {"products": db.find_products(term)}


@app.route("/reports/export", methods=["POST"])
def export():
    """Export a sales report as a tarball."""
    name = request.form["name"]
    reports.export_report(name)
    return {"status": "exported"}


@app.route("/cart")
def show_cart():
    """Show the cart stored in the session cookie."""
    items = cart.load_cart(request.cookies.get("cart", ""))
    return {"items": items}


@app.route("/checkout", methods=["POST"])
def checkout():
    """Price the cart with the active discount rule and charge it."""
    rule = request.args.get("discount", "total")
    total = pricing.apply_discount_rule(rule, float(request.form["total"]))
    log.info("charging with key %s", config.PAYMENT_API_KEY)
    return {"total": total}


@app.route("/orders/import", methods=["POST"])
def import_order():
    """Import an order exported by the warehouse system."""
    order = load_order(request.get_data())
    return {"order": order}


@app.route("/login", methods=["POST"])
def do_login():
    """Log a user in."""
    return {"ok": login(request.form["user"], request.form["password"])}
