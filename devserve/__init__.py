"""devserve: a development web server built on a drop-in http.server core."""

__version__ = "0.1.0"
