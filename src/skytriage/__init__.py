"""skytriage: find what is wrong, and what is new, in astronomical detector data."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("skytriage")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

from skytriage.errors import SkytriageInputError, SkytriageUsageError

__all__ = ["SkytriageInputError", "SkytriageUsageError", "__version__"]
