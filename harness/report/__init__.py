"""Reporting: published numbers, comparison tables and plots."""
