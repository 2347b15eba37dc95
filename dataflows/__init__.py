"""dataflows package."""
