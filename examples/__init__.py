"""Example functions, installed as the package ``kubelambda.examples`` (see pyproject.toml).

Each subfolder is the code of one function, deployed by ``kubelambda up --example``
(``kubelambda/embedded.py``); the folders are package data, not modules of this package.
"""
