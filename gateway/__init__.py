"""Notice gateway: turns notice requests into SMS (SMPP), voice calls (Asterisk) and email."""

__version__ = "0.1.0"
