"""Test and benchmark support: background servers on loopback."""
