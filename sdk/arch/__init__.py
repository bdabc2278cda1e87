"""Architectures as data, pure Python: the spec grammar, scaling, the one layer walk, zoo, spaces.

Imports nothing outside the standard library and numpy; every other room builds on it.
"""
