"""The coordinator opt-out form, the admin pages and the JSON API (`meeting-governance serve`)."""

from __future__ import annotations

from meeting_governance.web.app import create_app

__all__ = ["create_app"]
