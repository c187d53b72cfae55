"""Exceptions raised by organseglib.

Every message names the thing that is wrong (file, parameter), the rule it broke, the value found,
and how to fix it. Each class also derives from the built-in exception a caller would expect
(``ValueError`` for bad values, ``FileNotFoundError`` for missing files) so generic handlers work.
"""

from __future__ import annotations

# Exit statuses of the ``organseg`` command (README "Exit status"):
EXIT_OK = 0  # done, nothing to warn about
EXIT_ERROR = 2  # refused or failed: one line says why; no output was written
EXIT_WARNINGS = 3  # the output was written, but a result needs a look (an organ asked for was not found, an
#                   implausible volume or side, an auto-labeler's drop or leak);
#                   the warnings are printed and carried by the JSON done record's ``warnings`` list
EXIT_CASES_FAILED = 4  # a cohort (a folder in, a folder out) in which some scans failed: each is reported
#                        (summary.csv, its report JSON, a warning line); the other scans were written


class OrganSegError(Exception):
    """Base class of every error organseglib raises on purpose."""


class InputError(OrganSegError, ValueError):
    """An input (file, array, parameter) breaks a documented rule."""


class MissingFileError(OrganSegError, FileNotFoundError):
    """A file or folder that must exist does not."""


class UnsupportedFormatError(InputError):
    """A file name whose extension no reader or writer handles."""


class GeometryError(InputError):
    """Spacing, direction or dimensionality that cannot describe a 3D CT grid."""


class NotCTError(InputError):
    """Intensities that do not look like a CT in Hounsfield units."""


class LabelValueError(InputError):
    """A label map holding values outside the organ table."""


class OutputPathError(InputError):
    """An output path that cannot be written: its folder is missing, a file or read-only, or it names a
    folder where a file is wanted."""


class OutputExistsError(OrganSegError, FileExistsError):
    """An output would overwrite an input or an existing file the caller asked to keep."""


class ModelPackageError(OrganSegError, ValueError):
    """A model package that is missing, corrupt, tampered with or does not match its card."""
