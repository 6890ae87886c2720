"""The compiled hot path of femtows (see core.pyx). Import public names from ``femtows``."""
