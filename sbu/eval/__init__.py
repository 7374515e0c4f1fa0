"""Evaluation: accuracy, membership inference (later: exposure, backflow, tables, figures)."""
