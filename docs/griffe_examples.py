"""A griffe extension for the API reference: a docstring's ``Example:`` section is read as
``Examples:``, so that its ``>>>`` lines render as code (griffe reads the singular title as
an admonition of plain Markdown)."""

from __future__ import annotations

import re
from typing import Any

import griffe

__all__ = ["ExampleSections"]

_TITLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename every ``Example:`` section title to ``Examples:``."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _TITLE.sub(r"\1Examples:", obj.docstring.value)
