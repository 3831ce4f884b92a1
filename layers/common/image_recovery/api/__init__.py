"""The HTTP API (DESIGN §3)."""

from image_recovery.api.routes import Api, build_api

__all__ = ["Api", "build_api"]
