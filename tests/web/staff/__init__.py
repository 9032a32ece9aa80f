"""The staff blueprint."""
