/**
 * Format a price in euros.
 * @param {number} amount
 * @returns {string}
 */
export function formatPrice(amount) {
  return `${amount.toFixed(2)} EUR`;
}
