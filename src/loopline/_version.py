"""loopline's version: a leaf that every layer may import (nothing runs back up to the facade)."""

__version__ = "0.1.0"
