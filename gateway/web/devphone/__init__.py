"""The dev phone: text the gateway as any number, offline (only when the simulator is on)."""

from gateway.web.devphone.phone import bp

__all__ = ["bp"]
