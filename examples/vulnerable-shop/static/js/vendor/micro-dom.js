/* micro-dom 0.3.1 - vendored copy, MIT licensed. */
export function html(el, markup) { el.innerHTML = markup; }
