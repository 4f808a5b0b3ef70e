"""Public feed (placeholder until the feed blueprint lands)."""

from flask import Blueprint

bp = Blueprint("feed", __name__)
