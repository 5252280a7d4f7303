"""Thin clients: microphone, file and browser."""
