"""The errors convlens raises for a caller's mistake, and only for that.

PyTorch raises ``RuntimeError`` for bad convolution arguments; Python code expects ``ValueError``
(right kind, wrong value) and ``TypeError`` (wrong kind). A convlens argument error is all of
them at once, so ``except RuntimeError`` written against PyTorch and ``except ValueError``
written against the docs both catch it::

    ConvlensError                  every mistake of the caller's (the CLI reports these as usage errors)
      ArgumentError                also ValueError and RuntimeError: the value breaks a rule
      ArgumentTypeError            also TypeError and RuntimeError: the value is of the wrong kind

Anything else escaping convlens is a bug in convlens, not the caller's fault.
"""

from __future__ import annotations


class ConvlensError(Exception):
    """A mistake of the caller's: a bad argument, option, file or model name."""


class ArgumentError(ConvlensError, ValueError, RuntimeError):
    """An argument of the right kind with a value that breaks a rule; the message names the
    argument, the value and the rule."""


class ArgumentTypeError(ConvlensError, TypeError, RuntimeError):
    """An argument of the wrong kind (a float where an int goes, a tensor of the wrong dtype)."""
