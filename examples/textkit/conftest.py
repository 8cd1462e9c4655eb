"""Makes the package importable from the tests when pytest runs from this directory."""
