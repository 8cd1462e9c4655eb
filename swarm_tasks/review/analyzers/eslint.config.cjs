// The review's ESLint configuration: eslint-plugin-security's recommended rules and nothing of the
// reviewed repository's (ESLint runs with --no-config-lookup and --no-inline-config). Copied next to
// the installed packages by scripts/install-eslint.sh so that require() finds the plugin.
const security = require("eslint-plugin-security");

module.exports = [
  security.configs.recommended,
  {
    files: ["**/*.js", "**/*.cjs", "**/*.mjs", "**/*.jsx"],
    languageOptions: { ecmaVersion: "latest", sourceType: "module", parserOptions: { ecmaFeatures: { jsx: true } } },
  },
];
