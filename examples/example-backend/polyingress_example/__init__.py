"""Example third-party backend for polyingress."""
