"""accelsim: a cycle-approximate, bit-exact simulator of an int8 systolic-array accelerator."""

from accelsim.errors import AccelsimError

__all__ = ["AccelsimError", "__version__"]
__version__ = "0.1.0"
