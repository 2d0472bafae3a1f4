"""PP-ShiTuV2 product recognition service."""

__version__ = "0.1.0"
