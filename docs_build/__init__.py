"""The documentation site's build: the mkdocs hooks (`hooks.py`) and the reference pages they generate from the
code, so the pages cannot drift from what the code does."""
