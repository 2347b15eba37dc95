"""Prometheus configuration, rules and the live check of their expressions."""
