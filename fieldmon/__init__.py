"""fieldmon: the command line and the all-in-one launcher that tie agent and collector."""

__version__ = "0.1.0"
