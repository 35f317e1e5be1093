"""Meeting Governance: governed local transcription of Microsoft Teams recordings."""

__version__ = "0.1.0"
