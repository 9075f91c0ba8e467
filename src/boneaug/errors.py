"""The one exception type that the command line turns into a single clear line.

Every problem with a user's input (a file, a row, a value) is raised as `BoneaugError`
with a message that names the file, the row and what is wrong. The CLI prints that
message alone and exits non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class BoneaugError(Exception):
    """A problem with the user's input, stated in one line."""


class ManifestError(BoneaugError):
    """A manifest that breaks the contract of DESIGN.md."""


class ImageReadError(BoneaugError):
    """An image file that cannot be read as a radiograph."""
