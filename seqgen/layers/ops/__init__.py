"""seqgen's own layer kinds, one `Op` subclass each (see layers/kind.py).

Every module here is imported by layers/registry.py, so a new op needs no list to join: define
the class in the module of its family (or a new module here) and it is registered.
"""
