"""Diagrams of the book's core mechanisms, drawn by code from the data lec4 computes (tested on that data, not on pixels)."""
