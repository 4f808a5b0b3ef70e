"""Dev phone (placeholder)."""

from flask import Blueprint

bp = Blueprint("devphone", __name__)
