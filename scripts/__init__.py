"""Command-line wrappers; the logic lives in the importable packages."""
